//! Property tests over random sequences of appends, reads, rolls, syncs,
//! reopens (clean, crashed, power cut) and log start offset moves, checked
//! against a model: offsets dense and increasing, reads return exactly the
//! appended bytes, index lookups agree with a linear scan, timestamp lookups
//! agree with a scan, and idempotent producers' state follows their batches
//! (in sequence appends succeed, retries of the last batch are answered with
//! its offsets, the state survives every kind of reopen).

#[path = "common/encoder.rs"]
mod encoder;

use std::sync::Arc;

use encoder::Header;
use encoder::{BatchSpec, as_stored, encode, header, split_batches};
use gregor_log::{Log, LogConfig, SimStorage, Storage, TimestampOffset, TimestampType};
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000_000;
const DIR: &str = "/logs/prop-0";
/// Producer ids of the idempotent producers: this plus 0 or 1.
const FIRST_PRODUCER_ID: i64 = 7000;

#[derive(Debug, Clone)]
enum Op {
    /// Records' timestamps are NOW + the offsets given.
    Append {
        timestamps: Vec<i64>,
        value_size: usize,
        new_epoch: bool,
        /// An idempotent producer (0 or 1) and whether it bumps its epoch.
        producer: Option<(u8, bool)>,
    },
    /// An idempotent producer resends its last batch.
    Retry {
        producer: u8,
    },
    /// Moves the clock past segment.ms, so the next append rolls.
    Tick,
    Sync,
    Flush,
    Read {
        at: u16,
        max_bytes: usize,
        below_high_watermark: bool,
    },
    FindTimestamp {
        at: i64,
    },
    DeleteRecordsBefore {
        at: u16,
    },
    CloseAndReopen,
    CrashAndReopen,
    PowerCutAndReopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (
            prop::collection::vec(-50i64..500, 1..5),
            0usize..400,
            prop::bool::weighted(0.1),
            prop::option::weighted(0.5, (0u8..2, prop::bool::weighted(0.1))),
        )
            .prop_map(|(timestamps, value_size, new_epoch, producer)| Op::Append { timestamps, value_size, new_epoch, producer }),
        2 => (0u8..2).prop_map(|producer| Op::Retry { producer }),
        1 => Just(Op::Tick),
        2 => Just(Op::Sync),
        1 => Just(Op::Flush),
        4 => (any::<u16>(), 1usize..3000, any::<bool>())
            .prop_map(|(at, max_bytes, below_high_watermark)| Op::Read { at, max_bytes, below_high_watermark }),
        2 => (-100i64..700).prop_map(|at| Op::FindTimestamp { at }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecordsBefore { at }),
        1 => Just(Op::CloseAndReopen),
        1 => Just(Op::CrashAndReopen),
        1 => Just(Op::PowerCutAndReopen),
    ]
}

/// What the log should hold.
#[derive(Default)]
struct Model {
    /// Batches as stored (offsets assigned), in offset order.
    batches: Vec<Vec<u8>>,
    log_start_offset: i64,
    log_end_offset: i64,
    synced: i64,
    epoch: i32,
    /// Every idempotent producer's batch as stored, in offset order: those
    /// below the log start offset too, as long as no power cut lost them.
    produced: Vec<Vec<u8>>,
}

impl Model {
    /// The producer's last batch the log has.
    fn last_of(&self, producer_id: i64) -> Option<&Vec<u8>> {
        self.produced
            .iter()
            .rev()
            .find(|b| header(b).producer_id == producer_id)
    }

    /// The producer's epoch and base sequence for its next batch.
    fn next_for(&self, producer_id: i64, new_epoch: bool) -> (i16, i32) {
        match self.last_of(producer_id).map(|b| header(b)) {
            None => (0, 0),
            Some(h) if new_epoch => (h.producer_epoch + 1, 0),
            Some(h) => (h.producer_epoch, h.base_sequence + h.last_offset_delta + 1),
        }
    }

    fn visible(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.batches
            .iter()
            .filter(|b| header(b).last_offset() >= self.log_start_offset)
    }

    /// The linear scan the time index must agree with.
    fn find_timestamp(&self, target: i64) -> Option<TimestampOffset> {
        self.visible()
            .map(|b| header(b))
            .find(|h| h.max_timestamp >= target)
            .map(|h| TimestampOffset {
                timestamp: h.max_timestamp,
                offset: h.base_offset.max(self.log_start_offset),
            })
    }
}

struct Harness {
    storage: Arc<SimStorage>,
    config: LogConfig,
    log: Log,
    model: Model,
    now: i64,
}

impl Harness {
    fn reopen(&mut self) {
        self.log = Log::open_with_storage(DIR, self.config.clone(), self.storage.clone()).unwrap();
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Append {
                timestamps,
                value_size,
                new_epoch,
                producer,
            } => {
                let mut spec = BatchSpec::new(timestamps.len(), value_size, 0);
                spec.timestamps = timestamps.iter().map(|t| NOW + t).collect();
                spec.seed = self.model.log_end_offset as u8;
                if let Some((index, new_producer_epoch)) = producer {
                    spec.producer_id = FIRST_PRODUCER_ID + index as i64;
                    (spec.producer_epoch, spec.base_sequence) =
                        self.model.next_for(spec.producer_id, new_producer_epoch);
                }
                let b = encode(&spec);
                self.model.epoch += new_epoch as i32;
                let info = self.log.append(&b, self.model.epoch, self.now).unwrap();
                let b = as_stored(&b, info.base_offset, self.model.epoch, info.log_append_time_ms);
                assert!(!info.duplicate);
                assert_eq!(info.base_offset, self.model.log_end_offset, "offsets are dense");
                assert_eq!(info.last_offset, info.base_offset + timestamps.len() as i64 - 1);
                self.model.log_end_offset = info.last_offset + 1;
                if producer.is_some() {
                    self.model.produced.push(b.clone());
                }
                self.model.batches.push(b);
            }
            Op::Retry { producer } => self.retry(FIRST_PRODUCER_ID + producer as i64),
            Op::Tick => self.now += self.config.segment_ms + 1,
            Op::Sync => {
                self.log.sync_to(self.model.log_end_offset).unwrap();
                self.model.synced = self.model.log_end_offset;
            }
            Op::Flush => {
                self.log.flush().unwrap();
                self.model.synced = self.model.log_end_offset;
            }
            Op::Read {
                at,
                max_bytes,
                below_high_watermark,
            } => self.check_read(at, max_bytes, below_high_watermark),
            Op::FindTimestamp { at } => {
                let found = self.log.offset_for_timestamp(NOW + at).unwrap();
                assert_eq!(
                    found,
                    self.model.find_timestamp(NOW + at),
                    "time index lookup vs scan for {at}"
                );
            }
            Op::DeleteRecordsBefore { at } => {
                let (start, end) = (self.model.log_start_offset, self.model.log_end_offset);
                let target = start + at as i64 % (end - start + 1);
                self.log.set_high_watermark(end);
                assert_eq!(self.log.delete_records_before(target).unwrap(), target.max(start));
                self.model.log_start_offset = target.max(start);
            }
            Op::CloseAndReopen => {
                self.log.close().unwrap();
                self.model.synced = self.model.log_end_offset;
                self.reopen();
            }
            Op::CrashAndReopen => {
                // The process dies; the machine does not: nothing is lost.
                self.reopen();
                self.model.synced = self.model.log_end_offset;
            }
            Op::PowerCutAndReopen => {
                self.storage.power_cut();
                let model = &mut self.model;
                model.batches.retain(|b| header(b).last_offset() < model.synced);
                model.produced.retain(|b| header(b).last_offset() < model.synced);
                model.log_end_offset = model.synced;
                if model.log_start_offset > model.log_end_offset {
                    // The start offset was checkpointed beyond what survived.
                    model.batches.clear();
                    model.log_end_offset = model.log_start_offset;
                }
                model.synced = model.log_end_offset;
                self.reopen();
            }
        }
        self.check_invariants();
    }

    fn retry(&mut self, producer_id: i64) {
        let Some(original) = self.model.last_of(producer_id).cloned() else {
            return;
        };
        let h = header(&original);
        let resent = original.clone();
        let info = self.log.append(&resent, self.model.epoch, self.now).unwrap();
        if info.duplicate {
            assert_eq!((info.base_offset, info.last_offset), (h.base_offset, h.last_offset()));
            if self.config.message_timestamp_type == TimestampType::LogAppendTime {
                assert_eq!(info.log_append_time_ms, h.max_timestamp, "the original append time");
            }
            return;
        }
        // Only a producer whose batches all went with deleted segments may be
        // forgotten; its resent batch is then a new one.
        assert!(
            h.last_offset() < self.first_segment_base(),
            "a retry of offset {} was written again",
            h.base_offset
        );
        assert_eq!(info.base_offset, self.model.log_end_offset);
        self.model.log_end_offset = info.last_offset + 1;
        let resent = as_stored(&resent, info.base_offset, self.model.epoch, info.log_append_time_ms);
        self.model.produced.push(resent.clone());
        self.model.batches.push(resent);
    }

    fn first_segment_base(&self) -> i64 {
        self.segment_bases().into_iter().min().unwrap()
    }

    /// The log's producer state matches the model's last batch of each
    /// producer, unless that batch went with a deleted segment (the state
    /// may then have been forgotten on a reopen).
    fn check_producers(&self) {
        let states = self.log.producer_states();
        for producer_id in [FIRST_PRODUCER_ID, FIRST_PRODUCER_ID + 1] {
            let state = states.iter().find(|s| s.producer_id == producer_id);
            let Some(last) = self.model.last_of(producer_id).map(|b| header(b)) else {
                assert_eq!(state, None);
                continue;
            };
            let expected = |h: &Header| (h.producer_epoch, h.base_sequence + h.last_offset_delta, h.last_offset());
            let got = state.map(|s| (s.producer_epoch, s.last_sequence, s.last_offset));
            if got.is_some() || last.last_offset() >= self.first_segment_base() {
                assert_eq!(got, Some(expected(&last)), "producer {producer_id}");
            }
        }
    }

    fn check_read(&self, at: u16, max_bytes: usize, below_high_watermark: bool) {
        let (start, end) = (self.model.log_start_offset, self.model.log_end_offset);
        if end == start {
            assert!(self.log.read(start, max_bytes, i64::MAX).unwrap().is_none());
            return;
        }
        let offset = start + at as i64 % (end - start);
        let max_offset = if below_high_watermark {
            offset + (at as i64 % 7)
        } else {
            i64::MAX
        };
        let slice = self.log.read(offset, max_bytes, max_offset).unwrap();
        // The linear scan: the batch holding the offset, then whole batches
        // while they fit, end below max_offset, and stay in one segment.
        let segment_bases = self.segment_bases();
        let mut expected: Vec<u8> = Vec::new();
        for b in self.model.visible().skip_while(|b| header(b).last_offset() < offset) {
            let h = header(b);
            let fits = expected.is_empty() || expected.len() + b.len() <= max_bytes;
            let next_segment = !expected.is_empty() && segment_bases.contains(&h.base_offset);
            if h.last_offset() >= max_offset || !fits || next_segment {
                break;
            }
            expected.extend_from_slice(b);
        }
        let mut got = Vec::new();
        if let Some(slice) = slice {
            slice.read_into(&mut got).unwrap();
        }
        assert!(
            got == expected,
            "read({offset}, {max_bytes}, {max_offset}) returned {} bytes, expected {}",
            got.len(),
            expected.len()
        );
    }

    fn segment_bases(&self) -> Vec<i64> {
        let names = self.storage.list_dir(std::path::Path::new(DIR)).unwrap();
        names
            .iter()
            .filter_map(|n| n.strip_suffix(".log")?.parse().ok())
            .collect()
    }

    fn check_invariants(&self) {
        self.check_producers();
        let model = &self.model;
        assert_eq!(self.log.log_end_offset(), model.log_end_offset);
        assert_eq!(self.log.log_start_offset(), model.log_start_offset);
        // Reading everything returns exactly the appended bytes, densely.
        let mut got = Vec::new();
        let mut offset = model.log_start_offset;
        while let Some(slice) = self.log.read(offset, 5000, i64::MAX).unwrap() {
            let start = got.len();
            slice.read_into(&mut got).unwrap();
            for b in split_batches(&got[start..]) {
                assert!(header(b).base_offset <= offset.max(model.log_start_offset));
                offset = header(b).last_offset() + 1;
            }
        }
        let expected: Vec<u8> = model.visible().flatten().copied().collect();
        assert!(
            got == expected,
            "the log holds {} bytes, the model {}",
            got.len(),
            expected.len()
        );
        // The largest timestamp is at least the visible batches' largest.
        let visible_max = model.visible().map(|b| header(b).max_timestamp).max();
        let max = self.log.max_timestamp().unwrap().map(|m| m.timestamp);
        assert!(max >= visible_max, "{max:?} < {visible_max:?}");
        if model.log_start_offset == 0 {
            let first_max = model
                .visible()
                .map(|b| header(b))
                .max_by_key(|h| (h.max_timestamp, -h.base_offset));
            let expected = first_max.map(|h| TimestampOffset {
                timestamp: h.max_timestamp,
                offset: h.base_offset,
            });
            assert_eq!(self.log.max_timestamp().unwrap(), expected);
        }
    }
}

fn check(ops: Vec<Op>, config: LogConfig) {
    let storage = SimStorage::new();
    let log = Log::open_with_storage(DIR, config.clone(), storage.clone()).unwrap();
    let mut harness = Harness {
        storage,
        config,
        log,
        model: Model::default(),
        now: NOW,
    };
    for op in ops {
        harness.run(op);
    }
    // Every offset, looked up through the index, agrees with the scan.
    for offset in harness.model.log_start_offset..harness.model.log_end_offset {
        harness.check_read(((offset - harness.model.log_start_offset) % 65536) as u16, 1, false);
    }
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 3000,
        index_interval_bytes: 200,
        segment_ms: 60_000,
        // The records' timestamps are from 2023: no expiry.
        producer_id_expiration_ms: i64::MAX,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn create_time_logs_behave_like_the_model(ops in prop::collection::vec(op(), 1..80)) {
        check(ops, small_config());
    }

    #[test]
    fn log_append_time_logs_behave_like_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let config = LogConfig { message_timestamp_type: TimestampType::LogAppendTime, ..small_config() };
        check(ops, config);
    }

    #[test]
    fn tiny_indexes_roll_often(ops in prop::collection::vec(op(), 1..60)) {
        let config = LogConfig { segment_index_bytes: 24, index_interval_bytes: 1, ..small_config() };
        check(ops, config);
    }
}
