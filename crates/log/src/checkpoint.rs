//! The partition directory's checkpoint files, in Kafka's text format:
//! a version line (0), an entry count, then one entry per line.
//!
//! - `recovery-point-offset-checkpoint`: `topic partition offset`; every
//!   offset below it was flushed with its indexes, so recovery starts there.
//! - `log-start-offset`: `topic partition offset`, moved by DeleteRecords.
//! - `leader-epoch-checkpoint`: `epoch startOffset` lines (Kafka's
//!   `LeaderEpochFileCache`), the first offset written in each leader epoch.
//!
//! Kafka keeps the first two per log directory for all partitions; Gregor
//! keeps them in the partition directory so a partition stays self-contained.

use std::io;
use std::path::Path;

use crate::storage::{self, Storage};

pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
pub(crate) const LOG_START_OFFSET_FILE: &str = "log-start-offset";
pub(crate) const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// Kafka's clean shutdown marker: present only between close and open.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

const VERSION: &str = "0";

fn encode(lines: &[String]) -> Vec<u8> {
    let mut text = format!("{VERSION}\n{}\n", lines.len());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    text.into_bytes()
}

/// The entry lines of a checkpoint, or `None` if it is malformed.
fn decode(bytes: &[u8]) -> Option<Vec<&str>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let entries: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    (entries.len() == count).then_some(entries)
}

/// Reads a checkpoint's entry lines: `Ok(None)` if the file is missing,
/// `Err(InvalidData)` if it is malformed.
fn read_lines(storage: &dyn Storage, path: &Path) -> io::Result<Option<Vec<String>>> {
    if !storage.exists(path) {
        return Ok(None);
    }
    let bytes = storage::read_all(storage.open(path, false)?.as_ref())?;
    match decode(&bytes) {
        Some(lines) => Ok(Some(lines.into_iter().map(str::to_string).collect())),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed checkpoint {}", path.display()),
        )),
    }
}

/// The topic and partition a `<topic>-<partition>` directory holds, for the
/// offset checkpoints' `topic partition offset` lines.
fn topic_partition(dir: &Path) -> (String, i32) {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("log");
    match name.rsplit_once('-').and_then(|(t, p)| Some((t, p.parse().ok()?))) {
        Some((topic, partition)) if !topic.is_empty() => (topic.to_string(), partition),
        _ => (name.to_string(), 0),
    }
}

/// Durably writes an offset checkpoint (`RECOVERY_POINT_FILE` or
/// `LOG_START_OFFSET_FILE`).
pub(crate) fn write_offset(storage: &dyn Storage, dir: &Path, file: &str, offset: i64) -> io::Result<()> {
    storage::write_atomically(storage, &dir.join(file), &offset_contents(dir, offset))
}

/// Replaces an offset checkpoint without fsyncs: the caller makes it
/// durable (the file, then its directory). A crash before that leaves the
/// old checkpoint, the new one, or an unreadable file, which the next open
/// ignores (it then recovers from the log's start).
pub(crate) fn replace_offset(storage: &dyn Storage, dir: &Path, file: &str, offset: i64) -> io::Result<()> {
    storage::replace_file(storage, &dir.join(file), &offset_contents(dir, offset))
}

fn offset_contents(dir: &Path, offset: i64) -> Vec<u8> {
    let (topic, partition) = topic_partition(dir);
    encode(&[format!("{topic} {partition} {offset}")])
}

/// Reads an offset checkpoint; `Ok(None)` when missing.
pub(crate) fn read_offset(storage: &dyn Storage, dir: &Path, file: &str) -> io::Result<Option<i64>> {
    let Some(lines) = read_lines(storage, &dir.join(file))? else {
        return Ok(None);
    };
    let offset = lines.first().and_then(|l| l.split_whitespace().nth(2)?.parse().ok());
    match (lines.len(), offset) {
        (1, Some(offset)) => Ok(Some(offset)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed checkpoint {file}"),
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Kafka's `LeaderEpochFileCache`: for each leader epoch, the first offset
/// appended in it. Epochs and start offsets both increase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LeaderEpochCache {
    pub entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`; returns whether the
    /// cache changed. Unknown epochs (< 0) and older ones are not recorded.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        self.entries.push(EpochEntry { epoch, start_offset });
        true
    }

    /// The epoch of the batch at `offset`: that of the last entry starting
    /// at or before it, or -1 (no epoch) before the first entry.
    pub fn epoch_for(&self, offset: i64) -> i32 {
        let n = self.entries.partition_point(|e| e.start_offset <= offset);
        n.checked_sub(1).map_or(-1, |i| self.entries[i].epoch)
    }

    /// Drops entries starting at or after `end_offset` (the log was truncated
    /// there). Returns whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        self.entries.len() != before
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(
            &self
                .entries
                .iter()
                .map(|e| format!("{} {}", e.epoch, e.start_offset))
                .collect::<Vec<_>>(),
        )
    }

    pub fn write(&self, storage: &dyn Storage, dir: &Path) -> io::Result<()> {
        storage::write_atomically(storage, &dir.join(LEADER_EPOCH_FILE), &self.encode())
    }

    /// Reads the checkpoint: `Ok(None)` if missing, `InvalidData` if malformed
    /// or not increasing.
    pub fn read(storage: &dyn Storage, dir: &Path) -> io::Result<Option<LeaderEpochCache>> {
        let Some(lines) = read_lines(storage, &dir.join(LEADER_EPOCH_FILE))? else {
            return Ok(None);
        };
        let mut cache = LeaderEpochCache::default();
        for line in &lines {
            let mut fields = line.split_whitespace().map(str::parse::<i64>);
            let (Some(Ok(epoch)), Some(Ok(start_offset)), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("malformed epoch entry {line:?}"),
                ));
            };
            let increasing = cache
                .entries
                .last()
                .is_none_or(|e| epoch > e.epoch as i64 && start_offset >= e.start_offset);
            if !increasing || !(0..=i32::MAX as i64).contains(&epoch) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "leader epochs not increasing",
                ));
            }
            cache.entries.push(EpochEntry {
                epoch: epoch as i32,
                start_offset,
            });
        }
        Ok(Some(cache))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimStorage;

    #[test]
    fn offset_checkpoint_round_trips_in_kafka_format() {
        let storage = SimStorage::new();
        let dir = Path::new("/logs/orders-3");
        storage.create_dir_all(dir).unwrap();
        assert_eq!(read_offset(storage.as_ref(), dir, RECOVERY_POINT_FILE).unwrap(), None);
        write_offset(storage.as_ref(), dir, RECOVERY_POINT_FILE, 42).unwrap();
        assert_eq!(
            storage.file_contents(&dir.join(RECOVERY_POINT_FILE)).unwrap(),
            b"0\n1\norders 3 42\n"
        );
        assert_eq!(
            read_offset(storage.as_ref(), dir, RECOVERY_POINT_FILE).unwrap(),
            Some(42)
        );
        storage.set_file_contents(&dir.join(RECOVERY_POINT_FILE), b"0\n2\norders 3 42\n".to_vec());
        assert!(read_offset(storage.as_ref(), dir, RECOVERY_POINT_FILE).is_err());
    }

    #[test]
    fn topic_partition_from_dir_name() {
        assert_eq!(
            topic_partition(Path::new("/x/my-topic-12")),
            ("my-topic".to_string(), 12)
        );
        assert_eq!(topic_partition(Path::new("/x/plain")), ("plain".to_string(), 0));
    }

    #[test]
    fn leader_epoch_cache_assigns_truncates_and_round_trips() {
        let mut cache = LeaderEpochCache::default();
        assert!(cache.assign(1, 0));
        assert!(!cache.assign(1, 10));
        assert!(!cache.assign(-1, 10));
        assert!(cache.assign(3, 20));
        assert_eq!(cache.encode(), b"0\n2\n1 0\n3 20\n");
        let storage = SimStorage::new();
        let dir = Path::new("/t-0");
        storage.create_dir_all(dir).unwrap();
        cache.write(storage.as_ref(), dir).unwrap();
        assert_eq!(
            LeaderEpochCache::read(storage.as_ref(), dir).unwrap(),
            Some(cache.clone())
        );
        assert_eq!(
            (
                cache.epoch_for(-5),
                cache.epoch_for(0),
                cache.epoch_for(19),
                cache.epoch_for(20)
            ),
            (-1, 1, 1, 3)
        );
        assert!(cache.truncate_from_end(20));
        assert_eq!(cache.latest_epoch(), Some(1));
        storage.set_file_contents(&dir.join(LEADER_EPOCH_FILE), b"0\n2\n3 0\n1 5\n".to_vec());
        assert!(LeaderEpochCache::read(storage.as_ref(), dir).is_err());
    }
}
