//! The write side of [`Log`]: append (validate, roll, assign offsets, write,
//! index, publish), segment rolls, and log start offset moves.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::checkpoint::{self, LOG_START_OFFSET_FILE};
use crate::producer_state::{AppendOrigin, BatchMetadata, ProducerStateManager};
use crate::segment::{self, IndexingState, Segment};
use crate::{AppendInfo, Log, LogConfig, LogError, Result, TimestampType, lock, producer_snapshot, storage, validate};

impl Log {
    pub(crate) fn append_batches(
        &self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<AppendInfo> {
        let mut writer = lock(&self.writer);
        self.check_writable()?;
        let config = self.config();
        validate::validate_from(batches, &config, now_ms, &mut writer.batches, origin)?;
        // A leader never appends in an older epoch than one already seen;
        // -1 (no epoch) is only for logs that never saw one.
        if let Some(latest_epoch) = writer.epochs.latest_epoch()
            && leader_epoch < latest_epoch
        {
            return Err(LogError::FencedLeaderEpoch {
                epoch: leader_epoch,
                latest_epoch,
            });
        }
        let first_offset = self.log_end_offset();
        let state = &mut *writer;
        if let Some(original) = state.producers.prepare(&state.batches, first_offset, origin)? {
            return Ok(self.duplicate_info(&original, &config));
        }
        let records: i64 = writer.batches.iter().map(|b| b.records_count as i64).sum();
        let last_offset = first_offset + records - 1;
        let max_timestamp = writer.batches.iter().map(|b| b.max_timestamp).max().unwrap_or(-1);

        let mut active = self.active_segment();
        if should_roll(
            &active,
            &writer.active,
            &config,
            batches.len() as u64,
            max_timestamp,
            last_offset,
            now_ms,
        ) {
            active = self
                .roll(&config, &mut writer.producers, now_ms)
                .map_err(|e| self.fail_unless_out_of_space(e))?;
            writer.active = IndexingState::new(now_ms);
        }
        let headers = validate::assign_offsets(batches, &writer.batches, first_offset, leader_epoch);

        let new_epoch = leader_epoch >= 0 && writer.epochs.latest_epoch().is_none_or(|latest| leader_epoch > latest);
        if new_epoch || writer.epochs_unwritten {
            // The checkpoint names the new epoch before any batch carries it,
            // so recovery can refuse epochs beyond it; one an open could not
            // rewrite (a full disk) may still name epochs from offsets it cut
            // off, which this append's batches would contradict. The fsync
            // is left to the next group commit, which runs it before syncing
            // the data.
            let mut epochs = writer.epochs.clone();
            if new_epoch {
                epochs.assign(leader_epoch, first_offset);
            }
            let path = self.dir.join(checkpoint::LEADER_EPOCH_FILE);
            storage::replace_file(self.storage.as_ref(), &path, &epochs.encode())
                .map_err(|e| self.fail_unless_out_of_space(e))?;
            self.epochs_dirty.store(true, Ordering::Release);
            writer.epochs = epochs;
            writer.epochs_unwritten = false;
        }

        let writer = &mut *writer;
        active
            .append(
                &validate::stored_parts(batches, &writer.batches, &headers),
                &writer.batches,
                first_offset,
                &mut writer.active,
                config.index_interval_bytes,
            )
            .map_err(|e| self.fail_unless_out_of_space(e))?;
        // The batches are in the segment and published to its readers: a
        // failure from here on cannot be undone, so it takes the log offline
        // whatever its cause.
        //
        // The producer state and the transactions take the append before
        // the log end offset (and so the high watermark) can pass it.
        writer.producers.commit();
        self.record_transactions(&mut writer.producers, batches, &writer.batches, active.base_offset)
            .map_err(|e| self.fail(e))?;
        self.log_end_offset.store(last_offset + 1, Ordering::Release);
        self.on_write_succeeded();
        writer
            .producers
            .maybe_remove_expired(now_ms, config.producer_id_expiration_ms);
        let log_append_time_ms = match config.message_timestamp_type {
            TimestampType::CreateTime => -1,
            TimestampType::LogAppendTime => now_ms,
        };
        Ok(AppendInfo {
            base_offset: first_offset,
            last_offset,
            log_append_time_ms,
            log_start_offset: self.log_start_offset(),
            duplicate: false,
        })
    }

    /// The answer to a retried batch: its original offsets, as Kafka gives
    /// them. With LogAppendTime the stored max timestamp is the original
    /// append time, which Kafka returns too.
    fn duplicate_info(&self, original: &BatchMetadata, config: &LogConfig) -> AppendInfo {
        AppendInfo {
            base_offset: original.first_offset(),
            last_offset: original.last_offset,
            log_append_time_ms: match config.message_timestamp_type {
                TimestampType::CreateTime => -1,
                TimestampType::LogAppendTime => original.timestamp,
            },
            log_start_offset: self.log_start_offset(),
            duplicate: true,
        }
    }

    pub(crate) fn active_segment(&self) -> Arc<Segment> {
        self.segments()
            .last()
            .expect("the log always has an active segment")
            .clone()
    }

    /// Starts a new active segment at the log end offset, with a producer
    /// snapshot at that offset (Kafka snapshots on roll). Called under the
    /// append lock; the new files and their directory entries are fsynced by
    /// the next group commit, not here.
    ///
    /// A failure leaves the current segment active and the log as it was.
    /// It may leave the snapshot or empty segment files at the log end
    /// offset behind: both are true of the log as it is, recovery accepts
    /// them, and the next roll overwrites them.
    fn roll(
        &self,
        config: &LogConfig,
        producers: &mut ProducerStateManager,
        now_ms: i64,
    ) -> std::io::Result<Arc<Segment>> {
        let base_offset = self.log_end_offset();
        producers.remove_expired(now_ms, config.producer_id_expiration_ms);
        producer_snapshot::write(self.storage.as_ref(), &self.dir, base_offset, producers, false)?;
        lock(&self.snapshots).insert(base_offset);
        let segment = Arc::new(Segment::create(
            &self.storage,
            &self.dir,
            base_offset,
            config.segment_index_bytes,
        )?);
        self.active_segment().on_become_inactive();
        self.dir_dirty.store(true, Ordering::Release);
        let mut segments = lock(&self.segments);
        let mut list = Vec::with_capacity(segments.len() + 1);
        list.extend(segments.iter().cloned());
        list.push(segment.clone());
        *segments = Arc::new(list);
        tracing::debug!(dir = %self.dir.display(), base_offset, "rolled a new segment");
        Ok(segment)
    }

    pub(crate) fn advance_log_start_offset(&self, offset: i64) -> Result<i64> {
        let _admin = lock(&self.admin);
        self.check_writable()?;
        let current = self.log_start_offset();
        if offset <= current {
            return Ok(current);
        }
        // Kafka refuses to delete records the consumers cannot see yet.
        if offset > self.high_watermark() {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: current,
                log_end_offset: self.log_end_offset(),
            });
        }
        // Durable first, so that after a crash the start offset still covers
        // whatever segments this call goes on to delete.
        checkpoint::write_offset(self.storage.as_ref(), &self.dir, LOG_START_OFFSET_FILE, offset)
            .map_err(|e| self.fail_unless_out_of_space(e))?;
        let deleted = {
            let _writer = lock(&self.writer);
            self.log_start_offset.store(offset, Ordering::Release);
            self.high_watermark.fetch_max(offset, Ordering::AcqRel);
            let mut segments = lock(&self.segments);
            // A segment goes when the next one starts at or below the new log
            // start offset; the active segment always stays.
            let keep_from = segments.windows(2).take_while(|w| w[1].base_offset <= offset).count();
            let deleted: Vec<_> = segments[..keep_from].to_vec();
            *segments = Arc::new(segments[keep_from..].to_vec());
            deleted
        };
        // The snapshots of deleted segments go with them (Kafka deletes a
        // segment's snapshot with the segment), and like their files they
        // are retired: renamed `.deleted`, removed after the delay.
        let first_base = self.segments()[0].base_offset;
        let snapshots = producer_snapshot::take_below(&mut lock(&self.snapshots), first_base);
        let files = deleted
            .iter()
            .flat_map(|segment| segment::segment_files(&self.dir, segment.base_offset))
            .chain(
                snapshots
                    .iter()
                    .map(|&offset| producer_snapshot::snapshot_path(&self.dir, offset)),
            );
        self.retire_files(files).map_err(|e| self.fail(e))?;
        self.forget_aborted_below(first_base);
        Ok(offset)
    }
}

/// Kafka's `LogSegment.shouldRoll`, for an append of `append_bytes` whose
/// batches reach `last_offset` and `max_timestamp`. An empty segment never
/// rolls (Kafka would replace it by an identical one).
fn should_roll(
    active: &Segment,
    state: &IndexingState,
    config: &LogConfig,
    append_bytes: u64,
    max_timestamp: i64,
    last_offset: i64,
    now_ms: i64,
) -> bool {
    let size = active.size();
    if size == 0 {
        return false;
    }
    let waited_ms = match state.rolling_based_timestamp {
        Some(first_timestamp) => max_timestamp.saturating_sub(first_timestamp),
        None => now_ms.saturating_sub(state.created_ms),
    };
    size + append_bytes > config.segment_bytes
        // Index entries hold 4-byte positions and relative offsets.
        || size + append_bytes > i32::MAX as u64
        || last_offset - active.base_offset > i32::MAX as i64
        || waited_ms > config.segment_ms
        || active.offset_index.is_full()
        || active.time_index.is_full()
}
