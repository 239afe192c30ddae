//! Retention: Kafka's time and size limits (`retention.ms`,
//! `retention.bytes`) applied by deleting whole segments from the start of
//! the log and moving the log start offset past them; their files go
//! after `file.delete.delay.ms`.

use crate::{Log, Result};

impl Log {
    /// Deletes the oldest segments whose newest record is older than
    /// `retention_ms`, or that the log can lose while staying above
    /// `retention_bytes` (a negative limit is off). The active segment and
    /// anything at or above the high watermark stay. Returns the new log
    /// start offset when segments went.
    ///
    /// The segments' files are renamed `.deleted` and removed after
    /// `file.delete.delay.ms` (see `deletion`); readers holding their slices
    /// finish reading them.
    pub fn apply_retention(&self, retention_ms: i64, retention_bytes: i64, now_ms: i64) -> Result<Option<i64>> {
        let segments = self.segments();
        let high_watermark = self.high_watermark();
        let mut excess_bytes = match retention_bytes {
            limit if limit >= 0 => segments.iter().map(|s| s.size()).sum::<u64>() as i64 - limit,
            _ => i64::MIN,
        };
        let mut delete_before = None;
        // Every segment but the active one, oldest first.
        for pair in segments.windows(2) {
            let (segment, next) = (&pair[0], &pair[1]);
            if next.base_offset > high_watermark {
                break;
            }
            let expired = retention_ms >= 0
                && segment
                    .max_timestamp()
                    .is_some_and(|newest| newest.timestamp < now_ms.saturating_sub(retention_ms));
            let oversized = excess_bytes >= segment.size() as i64;
            if !expired && !oversized {
                break;
            }
            excess_bytes = excess_bytes.saturating_sub(segment.size() as i64);
            delete_before = Some(next.base_offset);
        }
        match delete_before {
            Some(offset) => {
                let log_start_offset = self.delete_records_before(offset)?;
                tracing::info!(dir = %self.dir().display(), log_start_offset, "retention deleted old segments");
                Ok(Some(log_start_offset))
            }
            None => Ok(None),
        }
    }
}
