//! The time index (`.timeindex`): Kafka's format, 12-byte entries of an
//! 8-byte timestamp and the 4-byte relative offset of the batch holding it,
//! big endian. An entry (t, o) says the largest timestamp among the batches
//! up to and including an indexed batch is t, first seen in the batch at o;
//! entries are appended only when t grows, so both columns increase.

use std::io;
use std::sync::Mutex;

use crate::batch::NO_TIMESTAMP;
use crate::entries::Entries;
use crate::storage::{IndexFile, LazyIndex, Persisted};

pub(crate) const ENTRY_SIZE: usize = 12;

pub(crate) struct TimeIndex {
    base_offset: i64,
    entries: Entries<2>,
    max_entries: usize,
    file: IndexFile,
    persisted: Mutex<Persisted>,
}

impl TimeIndex {
    pub fn create(file: IndexFile, base_offset: i64, index_bytes: u64) -> io::Result<TimeIndex> {
        file.truncate()?;
        Ok(TimeIndex::in_memory(file, base_offset, index_bytes))
    }

    fn in_memory(file: IndexFile, base_offset: i64, index_bytes: u64) -> TimeIndex {
        TimeIndex {
            base_offset,
            entries: Entries::new(),
            max_entries: (index_bytes as usize / ENTRY_SIZE).max(1),
            file,
            persisted: Mutex::default(),
        }
    }

    /// Loads the index from its file, or `None` when it fails the sanity
    /// checks (whole entries, both columns increasing, offsets below
    /// `next_offset`), for the caller to rebuild.
    pub fn load(
        file: IndexFile,
        base_offset: i64,
        index_bytes: u64,
        next_offset: i64,
    ) -> io::Result<Option<TimeIndex>> {
        let bytes = file.read()?;
        if bytes.len() % ENTRY_SIZE != 0 {
            return Ok(None);
        }
        let index = TimeIndex::in_memory(file, base_offset, index_bytes);
        let mut previous: Option<(i64, u32)> = None;
        for raw in bytes.chunks_exact(ENTRY_SIZE) {
            let timestamp = i64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
            let relative = u32::from_be_bytes(raw[8..].try_into().expect("4 bytes"));
            let increasing = previous.is_none_or(|(t, r)| timestamp > t && relative >= r);
            if !increasing || base_offset + relative as i64 >= next_offset {
                return Ok(None);
            }
            index.entries.push([timestamp as u64, relative as u64]);
            previous = Some((timestamp, relative));
        }
        *index.persisted.lock().unwrap_or_else(|e| e.into_inner()) = Persisted::loaded(index.entries.len());
        Ok(Some(index))
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// The last entry as (timestamp, offset).
    pub fn last_entry(&self) -> Option<(i64, i64)> {
        let [t, r] = self.entries.snapshot().last()?;
        Some((t as i64, self.base_offset + r as i64))
    }

    /// Appends (timestamp, offset) if the timestamp is larger than the last
    /// entry's (Kafka's `maybeAppend`). A full index still takes the final
    /// entry written when the segment becomes inactive.
    pub fn maybe_append(&self, timestamp: i64, offset: i64) {
        // An empty index behaves as if it held (NO_TIMESTAMP, base offset).
        let last_timestamp = self.last_entry().map_or(NO_TIMESTAMP, |(t, _)| t);
        if timestamp <= last_timestamp {
            return;
        }
        let relative = offset - self.base_offset;
        debug_assert!((0..=i32::MAX as i64).contains(&relative));
        self.entries.push([timestamp as u64, relative as u64]);
    }

    /// The entry with the largest timestamp strictly below `target`, as
    /// (timestamp, offset): every batch up to that offset has a smaller max
    /// timestamp than `target`, so a scan for `target` may start there.
    pub fn lookup_below(&self, target: i64) -> Option<(i64, i64)> {
        let snapshot = self.entries.snapshot();
        match snapshot.partition_point(|[t, _]| (t as i64) < target) {
            0 => None,
            n => {
                let [t, r] = snapshot.get(n - 1);
                Some((t as i64, self.base_offset + r as i64))
            }
        }
    }
}

impl LazyIndex for TimeIndex {
    fn file(&self) -> &IndexFile {
        &self.file
    }

    fn persisted(&self) -> &Mutex<Persisted> {
        &self.persisted
    }

    fn encode_from(&self, from: usize) -> (usize, Vec<u8>) {
        let snapshot = self.entries.snapshot();
        let mut buf = Vec::with_capacity(snapshot.len().saturating_sub(from) * ENTRY_SIZE);
        for i in from..snapshot.len() {
            let [t, r] = snapshot.get(i);
            buf.extend_from_slice(&(t as i64).to_be_bytes());
            buf.extend_from_slice(&(r as u32).to_be_bytes());
        }
        (snapshot.len(), buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_only_growing_timestamps_and_looks_up_strictly_below() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000010.timeindex");
        let index = TimeIndex::create(IndexFile::on_disk(&path), 10, 1200).unwrap();
        index.maybe_append(1000, 12);
        index.maybe_append(900, 15);
        index.maybe_append(1000, 16);
        index.maybe_append(2000, 20);
        assert_eq!(index.last_entry(), Some((2000, 20)));
        assert_eq!(index.lookup_below(1000), None);
        assert_eq!(index.lookup_below(1001), Some((1000, 12)));
        assert_eq!(index.lookup_below(5000), Some((2000, 20)));
        index.flush().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[..12], &[0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 2]);
        let reloaded = TimeIndex::load(IndexFile::on_disk(&path), 10, 1200, 21)
            .unwrap()
            .unwrap();
        assert_eq!(reloaded.last_entry(), Some((2000, 20)));
        assert!(
            TimeIndex::load(IndexFile::on_disk(&path), 10, 1200, 20)
                .unwrap()
                .is_none()
        );
    }
}
