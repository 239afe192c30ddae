//! The sparse offset index (`.index`): Kafka's format, 8-byte entries of a
//! 4-byte offset relative to the segment's base offset and the 4-byte file
//! position of the batch, big endian. Kafka (3.6+) indexes a batch's *last*
//! offset at the batch's position, so a lookup of the largest entry <= the
//! target gives a position from which a forward scan of batch headers finds
//! the batch holding the target.
//!
//! Entries are kept in memory for lock-free lookups and written to the file
//! lazily, on flush: the file only has to be complete for segments below the
//! recovery point; anything above it is rebuilt by recovery.

use std::io;
use std::sync::Mutex;

use crate::entries::Entries;
use crate::storage::{IndexFile, LazyIndex, Persisted};

pub(crate) const ENTRY_SIZE: usize = 8;

pub(crate) struct OffsetIndex {
    base_offset: i64,
    entries: Entries<1>,
    max_entries: usize,
    file: IndexFile,
    persisted: Mutex<Persisted>,
}

fn pack(relative_offset: u32, position: u32) -> [u64; 1] {
    [(relative_offset as u64) << 32 | position as u64]
}

fn unpack(entry: [u64; 1]) -> (u32, u32) {
    ((entry[0] >> 32) as u32, entry[0] as u32)
}

impl OffsetIndex {
    /// An empty index over `file` (which is truncated to match).
    pub fn create(file: IndexFile, base_offset: i64, index_bytes: u64) -> io::Result<OffsetIndex> {
        file.truncate()?;
        Ok(OffsetIndex::create_in_memory(file, base_offset, index_bytes))
    }

    /// Loads the index from its file, or `None` if the file fails Kafka's
    /// sanity checks (whole entries, offsets and positions strictly
    /// increasing, positions inside a log of `log_size` bytes): the caller
    /// then rebuilds it from the log.
    pub fn load(file: IndexFile, base_offset: i64, index_bytes: u64, log_size: u64) -> io::Result<Option<OffsetIndex>> {
        let bytes = file.read()?;
        if bytes.len() % ENTRY_SIZE != 0 {
            return Ok(None);
        }
        let index = OffsetIndex::create_in_memory(file, base_offset, index_bytes);
        let mut previous: Option<(u32, u32)> = None;
        for raw in bytes.chunks_exact(ENTRY_SIZE) {
            let relative = u32::from_be_bytes(raw[..4].try_into().expect("4 bytes"));
            let position = u32::from_be_bytes(raw[4..].try_into().expect("4 bytes"));
            let increasing = previous.is_none_or(|(r, p)| relative > r && position > p);
            if !increasing || relative > i32::MAX as u32 || position as u64 >= log_size {
                return Ok(None);
            }
            index.entries.push(pack(relative, position));
            previous = Some((relative, position));
        }
        *index.persisted.lock().unwrap_or_else(|e| e.into_inner()) = Persisted::loaded(index.entries.len());
        Ok(Some(index))
    }

    fn create_in_memory(file: IndexFile, base_offset: i64, index_bytes: u64) -> OffsetIndex {
        OffsetIndex {
            base_offset,
            entries: Entries::new(),
            max_entries: (index_bytes as usize / ENTRY_SIZE).max(1),
            file,
            persisted: Mutex::default(),
        }
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Indexes `offset` (a batch's last offset) at `position`.
    pub fn append(&self, offset: i64, position: u64) {
        let relative = offset - self.base_offset;
        debug_assert!((0..=i32::MAX as i64).contains(&relative) && position <= u32::MAX as u64);
        self.entries.push(pack(relative as u32, position as u32));
    }

    /// The largest indexed offset <= `target` and its position, or the
    /// segment's start.
    pub fn lookup(&self, target: i64) -> (i64, u64) {
        let snapshot = self.entries.snapshot();
        let relative = target - self.base_offset;
        if relative < 0 {
            return (self.base_offset, 0);
        }
        let relative = relative.min(u32::MAX as i64) as u32;
        match snapshot.partition_point(|e| unpack(e).0 <= relative) {
            0 => (self.base_offset, 0),
            n => {
                let (r, p) = unpack(snapshot.get(n - 1));
                (self.base_offset + r as i64, p as u64)
            }
        }
    }

    /// The largest indexed position <= `position`, or 0.
    pub fn floor_position(&self, position: u64) -> u64 {
        let snapshot = self.entries.snapshot();
        match snapshot.partition_point(|e| unpack(e).1 as u64 <= position) {
            0 => 0,
            n => unpack(snapshot.get(n - 1)).1 as u64,
        }
    }

    /// The last entry, as (offset, position).
    pub fn last_entry(&self) -> Option<(i64, u64)> {
        let (r, p) = unpack(self.entries.snapshot().last()?);
        Some((self.base_offset + r as i64, p as u64))
    }
}

impl LazyIndex for OffsetIndex {
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
            let (relative, position) = unpack(snapshot.get(i));
            buf.extend_from_slice(&relative.to_be_bytes());
            buf.extend_from_slice(&position.to_be_bytes());
        }
        (snapshot.len(), buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A close writes index entries unsynced and syncs many logs' files at
    /// once afterwards; a flush in between (a produce request's sync still
    /// running) must sync them itself, not take them for durable.
    #[test]
    fn a_flush_syncs_entries_an_earlier_write_left_unsynced() {
        use crate::storage::Storage;
        use std::path::Path;
        use std::sync::Arc;

        let sim = crate::SimStorage::new();
        let storage: Arc<dyn Storage> = sim.clone();
        storage.create_dir_all(Path::new("/p")).unwrap();
        let path = Path::new("/p/00000000000000000000.index");
        let index = OffsetIndex::create(IndexFile::new(&storage, path.to_path_buf()), 0, 1024).unwrap();
        storage.sync_dir(Path::new("/")).unwrap();
        storage.sync_dir(Path::new("/p")).unwrap();
        index.append(3, 100);
        assert!(index.write().unwrap(), "written, not yet durable");
        assert!(index.write().unwrap(), "still not durable");
        index.flush().unwrap();
        assert!(!index.write().unwrap(), "durable");
        sim.power_cut();
        assert_eq!(sim.file_contents(path).unwrap(), [0, 0, 0, 3, 0, 0, 0, 100]);
    }

    #[test]
    fn lookups_and_persistence_in_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let index = OffsetIndex::create(IndexFile::on_disk(&path), 100, 1024).unwrap();
        assert_eq!(index.lookup(150), (100, 0));
        index.append(109, 4096);
        index.append(130, 9000);
        assert_eq!(index.lookup(99), (100, 0));
        assert_eq!(index.lookup(108), (100, 0));
        assert_eq!(index.lookup(109), (109, 4096));
        assert_eq!(index.lookup(129), (109, 4096));
        assert_eq!(index.lookup(1000), (130, 9000));
        assert_eq!(index.floor_position(9000), 9000);
        assert_eq!(index.floor_position(8999), 4096);
        index.flush().unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [0, 0, 0, 9, 0, 0, 16, 0, 0, 0, 0, 30, 0, 0, 0x23, 0x28]
        );

        let reloaded = OffsetIndex::load(IndexFile::on_disk(&path), 100, 1024, 10_000)
            .unwrap()
            .unwrap();
        assert_eq!(reloaded.last_entry(), Some((130, 9000)));
        // A log shorter than an indexed position fails the sanity check.
        assert!(
            OffsetIndex::load(IndexFile::on_disk(&path), 100, 1024, 9000)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn full_at_index_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let index = OffsetIndex::create(IndexFile::on_disk(&dir.path().join("i")), 0, 16).unwrap();
        index.append(1, 1);
        assert!(!index.is_full());
        index.append(2, 2);
        assert!(index.is_full());
    }
}
