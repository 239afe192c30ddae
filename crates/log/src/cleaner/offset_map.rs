//! The cleaner's key → latest offset map (Kafka's `SkimpyOffsetMap`): a
//! fixed-size open-addressing table of 128-bit key hashes and offsets, so
//! its memory is bounded by `log.cleaner.dedupe.buffer.size` however many
//! keys the log holds. Keys themselves are never stored: two keys whose
//! 128-bit hashes collide would be treated as one (Kafka accepts the same
//! with MD5).

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;

/// Bytes per slot: a 16-byte hash and an 8-byte offset, as in Kafka.
pub(crate) const SLOT_BYTES: usize = 24;
const EMPTY: i64 = -1;

#[derive(Clone, Copy)]
struct Slot {
    hash: [u64; 2],
    offset: i64,
}

pub(crate) struct OffsetMap {
    slots: Vec<Slot>,
    /// Slots filled; the map is "full" at `load_factor` of its slots.
    entries: usize,
    max_entries: usize,
    /// The largest offset put or observed (Kafka's `latestOffset`).
    latest_offset: i64,
}

/// Two independent 64-bit SipHashes of the key (differently seeded): a
/// 128-bit fingerprint. Only compared within one cleaning, never stored.
fn fingerprint(key: &[u8]) -> [u64; 2] {
    let mut hash = [0u64; 2];
    for (seed, out) in hash.iter_mut().enumerate() {
        let mut hasher = DefaultHasher::new();
        hasher.write_u8(seed as u8);
        hasher.write(key);
        *out = hasher.finish();
    }
    hash
}

impl OffsetMap {
    /// A map using at most `memory_bytes`, sized down to what `expected_keys`
    /// needs at `load_factor` (Kafka allocates the whole buffer up front; a
    /// small log should not pay for it). Holds at least one entry.
    pub fn new(memory_bytes: usize, load_factor: f64, expected_keys: usize) -> OffsetMap {
        let load_factor = load_factor.clamp(0.1, 1.0);
        let max_slots = (memory_bytes / SLOT_BYTES).max(2);
        let wanted = ((expected_keys as f64 / load_factor).ceil() as usize).saturating_add(1);
        let slots = wanted.clamp(2, max_slots);
        let max_entries = ((slots as f64 * load_factor) as usize).clamp(1, slots - 1);
        OffsetMap {
            slots: vec![
                Slot {
                    hash: [0, 0],
                    offset: EMPTY,
                };
                slots
            ],
            entries: 0,
            max_entries,
            latest_offset: -1,
        }
    }

    pub fn is_full(&self) -> bool {
        self.entries >= self.max_entries
    }

    /// The slot holding `hash`, or the empty slot where it would go.
    fn position(&self, hash: [u64; 2]) -> usize {
        let len = self.slots.len();
        let mut at = (hash[0] % len as u64) as usize;
        loop {
            let slot = &self.slots[at];
            if slot.offset == EMPTY || slot.hash == hash {
                return at;
            }
            at = (at + 1) % len;
        }
    }

    /// Records `offset` as the latest for `key`. Returns false, changing
    /// nothing, when the key is new and the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = fingerprint(key);
        let at = self.position(hash);
        if self.slots[at].offset == EMPTY {
            if self.is_full() {
                return false;
            }
            self.entries += 1;
        }
        self.slots[at] = Slot { hash, offset };
        self.latest_offset = self.latest_offset.max(offset);
        true
    }

    /// The latest offset of `key`, or -1 if the map does not hold it.
    pub fn get(&self, key: &[u8]) -> i64 {
        let slot = &self.slots[self.position(fingerprint(key))];
        slot.offset
    }

    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }

    /// Moves the latest offset forward (a batch or segment was fully mapped).
    pub fn update_latest_offset(&mut self, offset: i64) {
        self.latest_offset = self.latest_offset.max(offset);
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    /// Filled fraction of the slots (Kafka's `utilization`).
    pub fn utilization(&self) -> f64 {
        self.entries as f64 / self.slots.len() as f64
    }

    #[cfg(test)]
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_per_key() {
        let mut map = OffsetMap::new(1 << 20, 0.9, 100);
        assert!(map.put(b"a", 1));
        assert!(map.put(b"b", 2));
        assert!(map.put(b"a", 7));
        assert_eq!((map.get(b"a"), map.get(b"b"), map.get(b"c")), (7, 2, -1));
        assert_eq!((map.len(), map.latest_offset()), (2, 7));
        map.update_latest_offset(20);
        assert_eq!(map.latest_offset(), 20);
    }

    #[test]
    fn memory_is_bounded_and_a_full_map_refuses_new_keys() {
        // 10 slots of 24 bytes at load factor 0.5: 5 keys.
        let mut map = OffsetMap::new(10 * SLOT_BYTES, 0.5, 1_000_000);
        assert_eq!(map.memory_bytes(), 10 * SLOT_BYTES);
        for i in 0..5 {
            assert!(map.put(format!("key-{i}").as_bytes(), i));
        }
        assert!(map.is_full());
        assert!(!map.put(b"one too many", 99));
        assert_eq!(map.get(b"one too many"), -1);
        assert!(map.put(b"key-3", 50), "known keys still update");
        assert_eq!(map.get(b"key-3"), 50);
        assert_eq!(map.latest_offset(), 50);
    }

    #[test]
    fn a_small_log_gets_a_small_map() {
        let map = OffsetMap::new(128 << 20, 0.9, 1000);
        assert!(map.memory_bytes() < 2000 * SLOT_BYTES);
        let mut map = OffsetMap::new(128 << 20, 0.9, 1000);
        for i in 0..1000 {
            assert!(map.put(format!("{i}").as_bytes(), i));
        }
        assert!(map.utilization() <= 0.9);
    }
}
