//! The read side of [`Log`]: fetches by offset and ListOffsets lookups by
//! timestamp. Readers take no lock but the segment list's, for an `Arc`
//! clone, and read segment files with positional reads.

use crate::segment::SegmentRead;
use crate::{FileSlice, Log, LogError, Result, TimestampOffset};

impl Log {
    pub(crate) fn read_batches(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Option<FileSlice>> {
        self.check_online()?;
        let log_start_offset = self.log_start_offset();
        let log_end_offset = self.log_end_offset();
        if start_offset < log_start_offset || start_offset > log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset: start_offset,
                log_start_offset,
                log_end_offset,
            });
        }
        if start_offset == log_end_offset || start_offset >= max_offset {
            return Ok(None);
        }
        // Batches are in their segment before the log end offset passes
        // them: a read must not return one its caller cannot see yet.
        let max_offset = max_offset.min(log_end_offset);
        let segments = self.segments();
        let first = segments
            .partition_point(|s| s.base_offset <= start_offset)
            .saturating_sub(1);
        for segment in &segments[first..] {
            // The segment does not hold what the log wrote there: like
            // Kafka's `LocalLog.read`, a failed read takes the log offline.
            match segment
                .read(start_offset, max_bytes, max_offset)
                .map_err(|e| self.fail(e))?
            {
                SegmentRead::Slice(slice) => return Ok(Some(slice)),
                SegmentRead::Stop => return Ok(None),
                SegmentRead::Beyond => {}
            }
        }
        Ok(None)
    }

    /// Kafka's `fetchOffsetByTimestamp` for a real timestamp: the first
    /// segment whose max timestamp reaches it, then its time index, offset
    /// index, and a scan of batch headers from there.
    pub(crate) fn lookup_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        self.check_online()?;
        let log_start_offset = self.log_start_offset();
        for segment in self.segments().iter() {
            let reaches = segment.max_timestamp().is_some_and(|max| max.timestamp >= timestamp);
            if segment.next_offset() <= log_start_offset || !reaches {
                continue;
            }
            if let Some(found) = segment
                .find_timestamp(timestamp, log_start_offset)
                .map_err(|e| self.fail(e))?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The largest timestamp and the first offset holding it, from each
    /// segment's kept maximum (ListOffsets -3, KIP-734).
    pub(crate) fn largest_timestamp(&self) -> Option<TimestampOffset> {
        let log_start_offset = self.log_start_offset();
        let mut best: Option<TimestampOffset> = None;
        for segment in self.segments().iter().filter(|s| s.next_offset() > log_start_offset) {
            if let Some(max) = segment.max_timestamp()
                && best.is_none_or(|b| max.timestamp > b.timestamp)
            {
                best = Some(max);
            }
        }
        best.map(|b| TimestampOffset {
            timestamp: b.timestamp,
            offset: b.offset.max(log_start_offset),
        })
    }
}
