//! The durable metadata log: a snapshot file plus a log of record frames
//! appended after it. Each append is fsynced before the new image is visible.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::{decode_frame, encode_frame};
use crate::{MetadataError, MetadataImage, MetadataRecord};

const LOG_FILE: &str = "metadata.log";
const SNAPSHOT_FILE: &str = "metadata.snapshot";
/// Past this many bytes of log, an append also writes a snapshot and starts a new log.
const SNAPSHOT_AFTER_BYTES: u64 = 1 << 20;

/// Not thread-safe by itself: the broker keeps it behind one mutex (the
/// single writer of metadata); readers share the `Arc<MetadataImage>`.
pub struct MetadataLog {
    dir: PathBuf,
    log: File,
    log_bytes: u64,
    image: Arc<MetadataImage>,
}

impl MetadataLog {
    /// Opens the metadata in `dir`: loads the snapshot, replays the log, and
    /// cuts off a torn tail left by a crash in the middle of an append.
    pub fn open(dir: &Path) -> Result<MetadataLog, MetadataError> {
        std::fs::create_dir_all(dir)?;
        let mut image = MetadataImage::default();
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        if snapshot_path.exists() {
            let bytes = std::fs::read(&snapshot_path)?;
            let end = replay(&bytes, &mut image)?;
            if end != bytes.len() {
                // Snapshots are written to a temporary file and renamed, so a damaged one is real corruption.
                return Err(MetadataError::Corrupt {
                    file: snapshot_path.display().to_string(),
                    reason: format!("damaged at byte {end}"),
                });
            }
        }
        let log_path = dir.join(LOG_FILE);
        let bytes = if log_path.exists() {
            std::fs::read(&log_path)?
        } else {
            Vec::new()
        };
        let valid = replay(&bytes, &mut image)?;
        let log = OpenOptions::new().create(true).append(true).open(&log_path)?;
        if valid < bytes.len() {
            tracing::warn!(path = %log_path.display(), valid, total = bytes.len(), "truncating torn metadata log tail");
            log.set_len(valid as u64)?;
            log.sync_all()?;
        }
        Ok(MetadataLog {
            dir: dir.to_path_buf(),
            log,
            log_bytes: valid as u64,
            image: Arc::new(image),
        })
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.clone()
    }

    /// Applies `records` as one atomic batch: all apply or none, and the batch
    /// is durable before the new image is returned.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<Arc<MetadataImage>, MetadataError> {
        let mut image = (*self.image).clone();
        for record in records {
            image.apply(record)?;
        }
        let mut frame = Vec::new();
        encode_frame(records, &mut frame);
        self.log.write_all(&frame)?;
        self.log.sync_data()?;
        self.log_bytes += frame.len() as u64;
        self.image = Arc::new(image);
        if self.log_bytes > SNAPSHOT_AFTER_BYTES {
            self.snapshot()?;
        }
        Ok(self.image.clone())
    }

    /// Writes the current image as a snapshot and empties the log.
    pub fn snapshot(&mut self) -> Result<(), MetadataError> {
        let mut bytes = Vec::new();
        encode_frame(&self.image.to_records(), &mut bytes);
        let temporary = self.dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let mut file = File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, self.dir.join(SNAPSHOT_FILE))?;
        File::open(&self.dir)?.sync_all()?;
        // The snapshot holds everything in the log, so the log can start over.
        self.log.set_len(0)?;
        self.log.sync_all()?;
        self.log_bytes = 0;
        Ok(())
    }
}

/// Applies every whole frame of `bytes` to `image`; returns the end of the last good frame.
fn replay(bytes: &[u8], image: &mut MetadataImage) -> Result<usize, MetadataError> {
    let mut position = 0;
    while let Some((records, size)) = decode_frame(&bytes[position..]) {
        for record in &records {
            image.apply(record)?;
        }
        position += size;
    }
    Ok(position)
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::ConfigResource;

    fn topic(name: &str, partitions: i32) -> MetadataRecord {
        MetadataRecord::Topic {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions,
        }
    }

    #[test]
    fn survives_reopen_and_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetadataLog::open(dir.path()).unwrap();
        log.append(&[topic("a", 1), topic("b", 2)]).unwrap();
        let b = log.image().topic("b").unwrap().id;
        log.append(&[MetadataRecord::PartitionCount { id: b, partitions: 5 }])
            .unwrap();
        let config = MetadataRecord::Config {
            resource: ConfigResource::Topic("a".into()),
            key: "retention.ms".into(),
            value: Some("5".into()),
        };
        log.append(&[config]).unwrap();
        let before = log.image();
        drop(log);
        let mut log = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(*log.image(), *before);
        log.append(&[MetadataRecord::ProducerIdBlock { next_block_start: 1000 }])
            .unwrap();
        log.snapshot().unwrap();
        log.append(&[MetadataRecord::RemoveTopic { id: b }]).unwrap();
        let error = log
            .append(&[MetadataRecord::ProducerIdBlock { next_block_start: 10 }])
            .unwrap_err();
        assert!(matches!(error, MetadataError::ProducerIdsBackwards { .. }));
        drop(log);
        let log = MetadataLog::open(dir.path()).unwrap();
        assert!(log.image().topic("b").is_none());
        assert_eq!(log.image().topic("a").unwrap().configs["retention.ms"], "5");
        assert_eq!(
            log.image().next_producer_id(),
            1000,
            "the snapshot keeps the producer id block"
        );
    }

    #[test]
    fn a_failed_batch_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetadataLog::open(dir.path()).unwrap();
        log.append(&[topic("a", 1)]).unwrap();
        let error = log.append(&[topic("c", 1), topic("a", 1)]).unwrap_err();
        assert!(matches!(error, MetadataError::TopicExists(_)));
        assert!(log.image().topic("c").is_none());
        drop(log);
        assert!(MetadataLog::open(dir.path()).unwrap().image().topic("c").is_none());
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetadataLog::open(dir.path()).unwrap();
        log.append(&[topic("a", 1)]).unwrap();
        log.append(&[topic("b", 1)]).unwrap();
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let length = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(length - 3)
            .unwrap();
        let mut log = MetadataLog::open(dir.path()).unwrap();
        assert!(log.image().topic("a").is_some());
        assert!(log.image().topic("b").is_none());
        log.append(&[topic("b", 1)]).unwrap();
        drop(log);
        assert!(MetadataLog::open(dir.path()).unwrap().image().topic("b").is_some());
    }
}
