//! The aborted transaction index: Kafka's `.txnindex` file per segment
//! (`TransactionIndex`), one entry per abort marker the segment holds, in
//! marker order, and its rebuild when a segment is recovered.
//!
//! Entry (Kafka's `AbortedTxn`, 34 bytes, big-endian):
//!
//! ```text
//! version: int16 (0)
//! producerId: int64
//! firstOffset: int64       the transaction's first offset
//! lastOffset: int64        the abort marker's offset
//! lastStableOffset: int64  the log's last stable offset after the abort
//! ```
//!
//! Durability: entries are written under the append lock without an
//! fsync; the group commit fsyncs a segment's file before the recovery
//! point passes the segment, as for the other indexes. Segments past the
//! recovery point get their file rebuilt on open from the log: the
//! producer state is replayed from a snapshot at or below the first such
//! segment, and each abort marker met becomes an entry, with the first
//! offset the producer state gives. A rebuilt file replaces the old one
//! whole (a temporary file, fsynced, renamed over it); one that finds the
//! disk full is left as it was and marked stale, and the running log
//! rewrites it before the recovery point passes its segment.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::BatchHeader;
use crate::producer_state::{CompletedTxn, ProducerStateManager};
use crate::segment::{self, Segment};
use crate::storage::{self, Storage, StorageFile};
use crate::transactions::{self, AbortedTransaction, AbortedTxnEntry};

pub(crate) const EXTENSION: &str = "txnindex";
/// Kafka's `AbortedTxn.CURRENT_VERSION`.
const VERSION: i16 = 0;
/// Kafka's `AbortedTxn.TOTAL_SIZE`.
pub(crate) const ENTRY_SIZE: usize = 34;

pub(crate) fn path(dir: &Path, base_offset: i64) -> PathBuf {
    segment::segment_path(dir, base_offset, EXTENSION)
}

pub(crate) fn encode(entry: &AbortedTxnEntry, out: &mut Vec<u8>) {
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&entry.txn.producer_id.to_be_bytes());
    out.extend_from_slice(&entry.txn.first_offset.to_be_bytes());
    out.extend_from_slice(&entry.txn.last_offset.to_be_bytes());
    out.extend_from_slice(&entry.last_stable_offset.to_be_bytes());
}

/// Decodes the whole entries in `bytes` (a torn last entry is ignored), or
/// says why the file cannot be trusted.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<AbortedTxnEntry>, String> {
    let i64_at = |entry: &[u8], at: usize| i64::from_be_bytes(entry[at..at + 8].try_into().expect("8 bytes"));
    let mut entries = Vec::with_capacity(bytes.len() / ENTRY_SIZE);
    for entry in bytes.chunks_exact(ENTRY_SIZE) {
        let version = i16::from_be_bytes([entry[0], entry[1]]);
        if version != VERSION {
            return Err(format!("unexpected aborted transaction version {version}"));
        }
        let decoded = AbortedTxnEntry {
            txn: AbortedTransaction {
                producer_id: i64_at(entry, 2),
                first_offset: i64_at(entry, 10),
                last_offset: i64_at(entry, 18),
            },
            last_stable_offset: i64_at(entry, 26),
        };
        if decoded.txn.first_offset > decoded.txn.last_offset {
            return Err(format!("an entry's range is reversed: {:?}", decoded.txn));
        }
        if entries
            .last()
            .is_some_and(|e: &AbortedTxnEntry| e.txn.last_offset >= decoded.txn.last_offset)
        {
            return Err("entries are out of order".into());
        }
        entries.push(decoded);
    }
    Ok(entries)
}

/// The segments' aborted transactions as loaded on open, and the rebuild
/// of those from `rebuild_from` on.
pub(crate) struct LoadedIndexes {
    /// Ordered by last offset.
    pub entries: Vec<AbortedTxnEntry>,
    /// The index files found, by segment base offset.
    pub files: BTreeMap<i64, Arc<dyn StorageFile>>,
    /// The segments whose rebuilt file could not be written (the disk was
    /// full): their file on disk may be wrong until rewritten whole.
    pub stale: BTreeSet<i64>,
    pub rebuild: Rebuild,
}

/// Loads the index files of `segments` (as recovered). Those of segments
/// from `recovered_from` on are rebuilt rather than read, as are those of
/// any segment whose file is damaged and all after it. Files of segments
/// that no longer exist were removed by recovery.
pub(crate) fn load(
    storage: &dyn Storage,
    dir: &Path,
    segments: &[Arc<Segment>],
    recovered_from: Option<i64>,
) -> io::Result<LoadedIndexes> {
    let mut rebuild_from = recovered_from.unwrap_or(i64::MAX);
    let mut entries = Vec::new();
    let mut files = BTreeMap::new();
    for segment in segments {
        let path = path(dir, segment.base_offset);
        if !storage.exists(&path) {
            continue;
        }
        let file = storage.open(&path, false)?;
        files.insert(segment.base_offset, file.clone());
        if segment.base_offset >= rebuild_from {
            continue;
        }
        let bytes = storage::read_all(file.as_ref())?;
        match decode(&bytes) {
            Ok(decoded) => {
                // Entries past the segment's end belong to batches that
                // recovery truncated.
                let kept = decoded.partition_point(|e| e.txn.last_offset < segment.next_offset());
                if kept * ENTRY_SIZE != bytes.len() {
                    file.set_len((kept * ENTRY_SIZE) as u64)?;
                }
                entries.extend_from_slice(&decoded[..kept]);
            }
            Err(why) => {
                tracing::warn!(dir = %dir.display(), base_offset = segment.base_offset, "rebuilding a damaged transaction index: {why}");
                rebuild_from = segment.base_offset;
            }
        }
    }
    entries.retain(|e| e.txn.last_offset < rebuild_from);
    Ok(LoadedIndexes {
        entries,
        files,
        stale: BTreeSet::new(),
        rebuild: Rebuild {
            from: rebuild_from,
            bases: segments.iter().map(|s| s.base_offset).collect(),
            entries: Vec::new(),
        },
    })
}

/// The aborted transactions met while the producer state replays the log
/// from `from` on (see `producer_snapshot::load`).
pub(crate) struct Rebuild {
    from: i64,
    /// The segments' base offsets, to place each entry.
    bases: Vec<i64>,
    /// (segment base offset, entry), in marker order.
    entries: Vec<(i64, AbortedTxnEntry)>,
}

impl Rebuild {
    /// The offset from which markers are indexed again: the producer state
    /// must be replayed from at or below it.
    pub fn from(&self) -> i64 {
        self.from
    }

    /// A replayed marker `completed` (already applied to `producers`) at
    /// `position` in `segment`: reads its control record for the type and
    /// coordinator epoch, and indexes an abort of a transaction with data.
    pub fn on_marker(
        &mut self,
        producers: &mut ProducerStateManager,
        segment: &Segment,
        position: u64,
        header: &BatchHeader,
        completed: CompletedTxn,
    ) -> io::Result<()> {
        let len = (header.size() as usize).min(transactions::MARKER_READ_BYTES);
        let mut bytes = vec![0; len];
        segment.log.read_exact_at(&mut bytes, position)?;
        let Some(marker) = transactions::parse_end_txn_marker(&bytes) else {
            return Ok(());
        };
        producers.set_coordinator_epoch(completed.producer_id, marker.coordinator_epoch);
        let (Some(first_offset), false) = (completed.first_offset, marker.commit) else {
            return Ok(());
        };
        if completed.marker_offset < self.from {
            return Ok(());
        }
        let last_stable_offset = producers
            .first_ongoing_offset()
            .unwrap_or(i64::MAX)
            .min(completed.marker_offset + 1);
        let at = self.bases.partition_point(|b| *b <= completed.marker_offset);
        let base = self.bases[at.saturating_sub(1)];
        self.entries.push((
            base,
            AbortedTxnEntry {
                txn: AbortedTransaction {
                    producer_id: completed.producer_id,
                    first_offset,
                    last_offset: completed.marker_offset,
                },
                last_stable_offset,
            },
        ));
        Ok(())
    }
}

impl LoadedIndexes {
    /// Writes the rebuilt entries: each rebuilt segment's file is replaced
    /// (or removed when it has none) and fsynced, so that once the
    /// recovery point passes the segment its file is right. A file that
    /// finds the disk full stays as it was, in `stale`, and the first such
    /// error in `out_of_space`; the entries are in memory either way.
    pub fn finish_rebuild(
        &mut self,
        storage: &dyn Storage,
        dir: &Path,
        out_of_space: &mut Option<io::Error>,
    ) -> io::Result<()> {
        let from = self.rebuild.from;
        if from == i64::MAX {
            return Ok(());
        }
        let mut by_segment: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
        for (base, entry) in &self.rebuild.entries {
            encode(entry, by_segment.entry(*base).or_default());
        }
        // `from` is a segment's base offset: every segment from there on
        // is rebuilt whole.
        let rebuilt: Vec<i64> = self.rebuild.bases.iter().copied().filter(|b| *b >= from).collect();
        for &base in &rebuilt {
            let bytes = by_segment.remove(&base).unwrap_or_default();
            let written = rewrite(storage, dir, base, &bytes).map(|file| match file {
                Some(file) => self.files.insert(base, file),
                None => self.files.remove(&base),
            });
            if crate::recovery::deferred_for_space(written.map(drop), out_of_space)? {
                self.stale.insert(base);
            }
        }
        if !rebuilt.is_empty() {
            storage.sync_dir(dir)?;
        }
        self.entries
            .extend(std::mem::take(&mut self.rebuild.entries).into_iter().map(|(_, e)| e));
        self.rebuild.from = i64::MAX;
        Ok(())
    }
}

/// Replaces segment `base`'s file with one holding exactly `bytes`, fsynced,
/// through a temporary file renamed over it, so that a failure (a full
/// disk) leaves the old file whole; removes it when `bytes` is empty. The
/// caller fsyncs the directory. Returns the new file.
pub(crate) fn rewrite(
    storage: &dyn Storage,
    dir: &Path,
    base: i64,
    bytes: &[u8],
) -> io::Result<Option<Arc<dyn StorageFile>>> {
    let path = path(dir, base);
    if bytes.is_empty() {
        if storage.exists(&path) {
            storage.remove_file(&path)?;
        }
        return Ok(None);
    }
    let tmp = storage::temporary_path(&path);
    if storage.exists(&tmp) {
        storage.remove_file(&tmp)?;
    }
    let file = storage.open(&tmp, true)?;
    if let Err(error) = file.append(bytes).and_then(|_| file.sync()) {
        // Empty after the failed append: removing it needs no space.
        let _ = storage.remove_file(&tmp);
        return Err(error);
    }
    storage.rename(&tmp, &path)?;
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxnEntry {
        AbortedTxnEntry {
            txn: AbortedTransaction {
                producer_id,
                first_offset,
                last_offset,
            },
            last_stable_offset: last_offset + 1,
        }
    }

    #[test]
    fn entries_use_kafkas_layout() {
        let mut bytes = Vec::new();
        encode(&entry(0x0102, 10, 20), &mut bytes);
        assert_eq!(bytes.len(), ENTRY_SIZE);
        assert_eq!(&bytes[..2], &[0, 0], "version 0");
        assert_eq!(&bytes[2..10], &0x0102i64.to_be_bytes());
        assert_eq!(&bytes[10..18], &10i64.to_be_bytes());
        assert_eq!(&bytes[18..26], &20i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &21i64.to_be_bytes());
        encode(&entry(7, 15, 30), &mut bytes);
        assert_eq!(decode(&bytes).unwrap(), [entry(0x0102, 10, 20), entry(7, 15, 30)]);
        assert_eq!(decode(&bytes[..50]).unwrap(), [entry(0x0102, 10, 20)], "a torn entry");
    }

    #[test]
    fn damaged_files_are_refused() {
        let mut bytes = Vec::new();
        encode(&entry(1, 10, 20), &mut bytes);
        encode(&entry(1, 5, 8), &mut bytes);
        assert!(decode(&bytes).unwrap_err().contains("order"));
        let mut version = bytes[..ENTRY_SIZE].to_vec();
        version[1] = 1;
        assert!(decode(&version).unwrap_err().contains("version"));
        let mut reversed = Vec::new();
        encode(&entry(1, 30, 20), &mut reversed);
        assert!(decode(&reversed).is_err());
    }
}
