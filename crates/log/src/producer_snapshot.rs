//! Producer state snapshots: Kafka's `<offset, 20 digits>.snapshot` files in
//! the partition directory, each holding every producer's state as of that
//! offset (exclusive), and the rebuild of the producer state on open.
//!
//! Format (Kafka's `ProducerSnapshot` message, version 1, big-endian):
//!
//! ```text
//! version: int16 (1)
//! crc: uint32                 CRC32C of everything after this field
//! entries: int32 count, then per producer:
//!   producerId int64, epoch int16, lastSequence int32, lastOffset int64,
//!   offsetDelta int32, timestamp int64, coordinatorEpoch int32,
//!   currentTxnFirstOffset int64 (-1: none)
//! ```
//!
//! As in Kafka, an entry keeps only the producer's last batch, so after a
//! restart from a snapshot only a retry of that batch is recognised as a
//! duplicate (batches after the snapshot, rebuilt by scanning, all are).
//!
//! When: on segment roll (at the new segment's base offset, written under
//! the append lock without an fsync; the group commit fsyncs it when the
//! recovery point passes it) and on clean close (at the log end offset,
//! fsynced). On open, the newest readable snapshot between the first
//! segment's base offset and the log end offset is loaded and the batch
//! headers after it are replayed; unreadable snapshots are deleted and an
//! older one (or the log start) is used instead, never failing the open.
//!
//! A snapshot belongs to the segment starting at its offset (the roll's) or
//! sits past every segment (the close's, at the log end). One whose offset
//! no longer starts a segment, once a cleaner swap merged segments, is a
//! stray: the swap retires it (Kafka's `removeStraySnapshots`, called by
//! `replaceSegments`) and an open deletes any a crash left behind (as
//! Kafka's `LogLoader` does).

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::producer_state::{BatchMetadata, ProducerBatch, ProducerEntry, ProducerStateManager};
use crate::scan::HeaderScanner;
use crate::segment::{self, Segment};
use crate::storage::{self, Storage};
use crate::transaction_index::Rebuild;

pub(crate) const SNAPSHOT_EXTENSION: &str = "snapshot";
const VERSION: i16 = 1;
const CRC_OFFSET: usize = 2;
const ENTRIES_OFFSET: usize = CRC_OFFSET + 4;
const ENTRY_SIZE: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
/// How many snapshots at or below the recovery point are kept: the newest
/// is the one recovery wants, the one before it a fallback. Snapshots above
/// the recovery point all stay, as a power cut may cut the log back to any
/// of them.
const SNAPSHOTS_RETAINED: usize = 2;

pub(crate) fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    segment::segment_path(dir, offset, SNAPSHOT_EXTENSION)
}

pub(crate) fn encode(entries: &[(i64, ProducerEntry)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENTRIES_OFFSET + 4 + entries.len() * ENTRY_SIZE);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(entries.len() as i32).to_be_bytes());
    for (producer_id, entry) in entries {
        let last = entry.last_batch();
        out.extend_from_slice(&producer_id.to_be_bytes());
        out.extend_from_slice(&entry.producer_epoch.to_be_bytes());
        out.extend_from_slice(&entry.last_sequence().to_be_bytes());
        out.extend_from_slice(&last.map_or(-1, |b| b.last_offset).to_be_bytes());
        out.extend_from_slice(&last.map_or(0, |b| b.offset_delta).to_be_bytes());
        out.extend_from_slice(&entry.last_timestamp.to_be_bytes());
        out.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
        out.extend_from_slice(&entry.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
    }
    let crc = crc32c::crc32c(&out[ENTRIES_OFFSET..]);
    out[CRC_OFFSET..ENTRIES_OFFSET].copy_from_slice(&crc.to_be_bytes());
    out
}

/// A big-endian reader over a snapshot's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let field = self.bytes[self.at..self.at + N].try_into().expect("length checked");
        self.at += N;
        field
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take())
    }
}

/// Decodes a snapshot, or says why it cannot be trusted.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<(i64, ProducerEntry)>, String> {
    if bytes.len() < ENTRIES_OFFSET + 4 {
        return Err(format!("{} bytes are too few for a snapshot", bytes.len()));
    }
    let mut reader = Reader { bytes, at: 0 };
    let version = reader.i16();
    if version != VERSION {
        return Err(format!("unknown snapshot version {version}"));
    }
    let stored = reader.i32() as u32;
    let computed = crc32c::crc32c(&bytes[ENTRIES_OFFSET..]);
    if stored != computed {
        return Err(format!(
            "CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let count = reader.i32();
    let expected_len = usize::try_from(count)
        .ok()
        .and_then(|n| n.checked_mul(ENTRY_SIZE)?.checked_add(ENTRIES_OFFSET + 4));
    if expected_len != Some(bytes.len()) {
        return Err(format!(
            "{count} entries do not fill a snapshot of {} bytes",
            bytes.len()
        ));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let producer_id = reader.i64();
        let producer_epoch = reader.i16();
        let last_sequence = reader.i32();
        let last_offset = reader.i64();
        let offset_delta = reader.i32();
        let timestamp = reader.i64();
        let coordinator_epoch = reader.i32();
        let current_txn_first_offset = reader.i64();
        // As Kafka's readSnapshot: a last offset of -1 means no batch.
        let last_batch = (last_offset >= 0).then_some(BatchMetadata {
            last_sequence,
            last_offset,
            offset_delta,
            timestamp,
        });
        let entry = ProducerEntry::restored(
            producer_epoch,
            coordinator_epoch,
            timestamp,
            (current_txn_first_offset >= 0).then_some(current_txn_first_offset),
            last_batch,
        );
        entries.push((producer_id, entry));
    }
    Ok(entries)
}

/// Writes the snapshot at `offset`. With `sync` it is durable on return
/// (clean close); without, only replaced, and the caller fsyncs it later.
pub(crate) fn write(
    storage: &dyn Storage,
    dir: &Path,
    offset: i64,
    state: &ProducerStateManager,
    sync: bool,
) -> io::Result<()> {
    let bytes = encode(&state.entries());
    let path = snapshot_path(dir, offset);
    if sync {
        storage::write_atomically(storage, &path, &bytes)
    } else {
        storage::replace_file(storage, &path, &bytes)
    }
}

fn remove(storage: &dyn Storage, dir: &Path, offset: i64) -> io::Result<()> {
    let path = snapshot_path(dir, offset);
    match storage.remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Kafka's `removeStraySnapshots`: the snapshots whose offset starts none of
/// the segments at `segment_bases`, but for the newest of them when it lies
/// past every segment's base (the clean close's, at the log end, or a roll's
/// whose segment is not in place yet). Returns them, oldest first.
pub(crate) fn strays(snapshots: &BTreeSet<i64>, segment_bases: &[i64]) -> Vec<i64> {
    let mut strays: Vec<i64> = snapshots
        .iter()
        .copied()
        .filter(|offset| segment_bases.binary_search(offset).is_err())
        .collect();
    let last_base = segment_bases.last().copied().unwrap_or(i64::MIN);
    if strays.last().is_some_and(|newest| *newest > last_base) {
        strays.pop();
    }
    strays
}

/// Deletes the [`strays`] and takes them out of `snapshots`; returns them.
pub(crate) fn remove_strays(
    storage: &dyn Storage,
    dir: &Path,
    snapshots: &mut BTreeSet<i64>,
    segment_bases: &[i64],
) -> io::Result<Vec<i64>> {
    let strays = strays(snapshots, segment_bases);
    for offset in &strays {
        remove(storage, dir, *offset)?;
        snapshots.remove(offset);
    }
    Ok(strays)
}

/// Takes the snapshots below `offset` (those of deleted segments) out of
/// `snapshots` and returns them, for the caller to retire with their
/// segments.
pub(crate) fn take_below(snapshots: &mut BTreeSet<i64>, offset: i64) -> Vec<i64> {
    let kept = snapshots.split_off(&offset);
    std::mem::replace(snapshots, kept).into_iter().collect()
}

/// Keeps every snapshot above `recovery_point` and the newest
/// [`SNAPSHOTS_RETAINED`] at or below it; deletes the rest.
pub(crate) fn prune(
    storage: &dyn Storage,
    dir: &Path,
    snapshots: &mut BTreeSet<i64>,
    recovery_point: i64,
) -> io::Result<()> {
    let at_or_below: Vec<i64> = snapshots.range(..=recovery_point).copied().collect();
    let excess = at_or_below.len().saturating_sub(SNAPSHOTS_RETAINED);
    for &offset in &at_or_below[..excess] {
        remove(storage, dir, offset)?;
        snapshots.remove(&offset);
    }
    Ok(())
}

/// The producer state of a log whose (recovered) segments are `segments`,
/// and the snapshot files kept. Producers idle for `expiration_ms` at
/// `now_ms` are dropped, as Kafka does when loading. The replay hands
/// `rebuild` the markers it meets; markers below the snapshot loaded (down
/// to `rebuild.from()`) come from a second, scratch replay from an older
/// snapshot, which leaves the state itself as the newest snapshot gives it.
pub(crate) fn load(
    storage: &dyn Storage,
    dir: &Path,
    segments: &[Arc<Segment>],
    expiration_ms: i64,
    now_ms: i64,
    rebuild: &mut Rebuild,
) -> io::Result<(ProducerStateManager, BTreeSet<i64>)> {
    let first_base = segments.first().map_or(0, |s| s.base_offset);
    let log_end_offset = segments.last().map_or(first_base, |s| s.next_offset());
    let mut snapshots: BTreeSet<i64> = storage
        .list_dir(dir)?
        .iter()
        .filter_map(|name| segment::parse_file_name(name, SNAPSHOT_EXTENSION))
        .collect();
    // Snapshots past the log end describe batches a crash cut off; those
    // below the first segment cannot be replayed forward.
    let unusable: Vec<i64> = snapshots
        .iter()
        .copied()
        .filter(|o| *o < first_base || *o > log_end_offset)
        .collect();
    let mut removed = !unusable.is_empty();
    for offset in unusable {
        tracing::info!(dir = %dir.display(), offset, "deleting an out-of-range producer snapshot");
        remove(storage, dir, offset)?;
        snapshots.remove(&offset);
    }
    // Strays a crash kept a cleaner swap from retiring. Nothing reads them
    // yet, so they go at once, as `.deleted` files do.
    let bases: Vec<i64> = segments.iter().map(|s| s.base_offset).collect();
    for offset in remove_strays(storage, dir, &mut snapshots, &bases)? {
        tracing::info!(dir = %dir.display(), offset, "deleted a producer snapshot that starts no segment");
        removed = true;
    }
    let (from, mut state) = newest_state(storage, dir, &mut snapshots, i64::MAX, first_base, &mut removed)?;
    if rebuild.from() < from {
        let (scratch_from, mut scratch) =
            newest_state(storage, dir, &mut snapshots, rebuild.from(), first_base, &mut removed)?;
        replay_segments(&mut scratch, segments, scratch_from, from, rebuild)?;
    }
    replay_segments(&mut state, segments, from, i64::MAX, rebuild)?;
    state.remove_expired(now_ms, expiration_ms);
    if removed {
        // A deleted snapshot must stay deleted before appends pass its offset again.
        storage.sync_dir(dir)?;
    }
    Ok((state, snapshots))
}

/// The state of the newest readable snapshot at or below `at_most` and its
/// offset, or an empty state at `first_base`. Unreadable snapshots met on
/// the way are deleted.
fn newest_state(
    storage: &dyn Storage,
    dir: &Path,
    snapshots: &mut BTreeSet<i64>,
    at_most: i64,
    first_base: i64,
    removed: &mut bool,
) -> io::Result<(i64, ProducerStateManager)> {
    while let Some(&offset) = snapshots.range(..=at_most).next_back() {
        match read(storage, dir, offset) {
            Ok(entries) => return Ok((offset, ProducerStateManager::from_entries(entries))),
            Err(why) => {
                tracing::warn!(dir = %dir.display(), offset, "deleting an unreadable producer snapshot: {why}");
                remove(storage, dir, offset)?;
                snapshots.remove(&offset);
                *removed = true;
            }
        }
    }
    Ok((first_base, ProducerStateManager::default()))
}

fn read(storage: &dyn Storage, dir: &Path, offset: i64) -> Result<Vec<(i64, ProducerEntry)>, String> {
    let file = storage
        .open(&snapshot_path(dir, offset), false)
        .map_err(|e| e.to_string())?;
    let bytes = storage::read_all(file.as_ref()).map_err(|e| e.to_string())?;
    decode(&bytes)
}

/// Replays the headers of every batch at or after `from` and starting
/// below `until` into `state` (Kafka's `rebuildProducerState`). Recovery already verified the
/// segments past the recovery point; a damaged header in a trusted one
/// ends the replay with a warning rather than failing the open.
fn replay_segments(
    state: &mut ProducerStateManager,
    segments: &[Arc<Segment>],
    from: i64,
    until: i64,
    rebuild: &mut Rebuild,
) -> io::Result<()> {
    for segment in segments
        .iter()
        .filter(|s| s.next_offset() > from && s.base_offset < until)
    {
        let position = segment.offset_index.lookup(from).1;
        let replayed = replay_segment(state, segment, position, from, until, rebuild);
        let replayed = match replayed {
            Err(e) if e.kind() == io::ErrorKind::InvalidData && position > 0 => {
                tracing::warn!(base_offset = segment.base_offset, error = %e, "offset index looks damaged; scanning");
                replay_segment(state, segment, 0, from, until, rebuild)
            }
            other => other,
        };
        match replayed {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!(base_offset = segment.base_offset, error = %e, "producer state rebuild stops early");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn replay_segment(
    state: &mut ProducerStateManager,
    segment: &Segment,
    position: u64,
    from: i64,
    until: i64,
    rebuild: &mut Rebuild,
) -> io::Result<()> {
    let mut scanner = HeaderScanner::new(segment.log.as_ref(), position, segment.size());
    while let Some(batch) = scanner.next_batch()? {
        if batch.header.base_offset >= until {
            break;
        }
        if batch.header.last_offset() >= from
            && let Some(completed) = state.replay(&ProducerBatch::from_header(&batch.header))
        {
            rebuild.on_marker(state, segment, batch.position, &batch.header, completed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_state() -> ProducerStateManager {
        let batch = BatchMetadata {
            last_sequence: 9,
            last_offset: 120,
            offset_delta: 4,
            timestamp: 1_700_000_000_123,
        };
        ProducerStateManager::from_entries([
            (5, ProducerEntry::restored(2, -1, 1_700_000_000_123, None, Some(batch))),
            (9, ProducerEntry::restored(0, 3, 77, Some(100), None)),
        ])
    }

    #[test]
    fn snapshots_round_trip_in_kafkas_layout() {
        let state = sample_state();
        let bytes = encode(&state.entries());
        assert_eq!(bytes.len(), ENTRIES_OFFSET + 4 + 2 * ENTRY_SIZE);
        assert_eq!(&bytes[..2], &1i16.to_be_bytes(), "version 1");
        assert_eq!(&bytes[6..10], &2i32.to_be_bytes(), "entry count");
        assert_eq!(&bytes[10..18], &5i64.to_be_bytes(), "entries ordered by producer id");
        let crc = u32::from_be_bytes(bytes[2..6].try_into().unwrap());
        assert_eq!(crc, crc32c::crc32c(&bytes[6..]));
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded, state.entries());
        let restored = decoded[0].1;
        assert_eq!(restored.last_batch().unwrap().first_sequence(), 5);
        assert_eq!(restored.last_batch().unwrap().first_offset(), 116);
        assert_eq!((decoded[1].1.last_sequence(), decoded[1].1.last_batch()), (-1, None));
    }

    #[test]
    fn damaged_snapshots_are_refused() {
        let bytes = encode(&sample_state().entries());
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert!(decode(&flipped).unwrap_err().contains("CRC"));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err(), "truncated");
        assert!(decode(&bytes[..5]).is_err(), "shorter than the header");
        assert!(decode(&[]).is_err(), "empty");
        let mut version = bytes.clone();
        version[1] = 2;
        assert!(decode(&version).unwrap_err().contains("version"));
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
    }

    #[test]
    fn pruning_keeps_the_newest_below_the_recovery_point_and_all_above() {
        let storage = crate::SimStorage::new();
        let dir = Path::new("/t-0");
        storage.create_dir_all(dir).unwrap();
        let state = sample_state();
        let mut snapshots = BTreeSet::new();
        for offset in [10, 20, 30, 40, 50] {
            write(storage.as_ref(), dir, offset, &state, false).unwrap();
            snapshots.insert(offset);
        }
        prune(storage.as_ref(), dir, &mut snapshots, 35).unwrap();
        let mut names = storage.list_dir(dir).unwrap();
        names.sort();
        assert_eq!(
            names,
            [
                "00000000000000000020.snapshot",
                "00000000000000000030.snapshot",
                "00000000000000000040.snapshot",
                "00000000000000000050.snapshot"
            ]
        );
        assert_eq!(snapshots.iter().copied().collect::<Vec<_>>(), [20, 30, 40, 50]);
        assert_eq!(take_below(&mut snapshots, 40), [20, 30]);
        assert_eq!(snapshots.iter().copied().collect::<Vec<_>>(), [40, 50]);
    }

    #[test]
    fn strays_start_no_segment_but_the_newest_past_every_segment_stays() {
        let snapshots: BTreeSet<i64> = [10, 20, 30, 45, 60, 75].into_iter().collect();
        // Segments 20 and 30 were merged into 10; 45 was a clean close's
        // snapshot inside the segment at 40, 75 one at the log end.
        assert_eq!(strays(&snapshots, &[10, 40, 60]), [20, 30, 45]);
        // The newest stray stays only past every segment's base, as Kafka's.
        assert_eq!(strays(&snapshots, &[10, 40, 60, 80]), [20, 30, 45, 75]);
        assert_eq!(strays(&snapshots, &[10, 20, 30, 45, 60, 75]), Vec::<i64>::new());
        assert_eq!(strays(&snapshots, &[]), [10, 20, 30, 45, 60]);
        assert_eq!(strays(&BTreeSet::new(), &[0, 10]), Vec::<i64>::new());
    }
}
