//! An append-only array of fixed-size index entries that one writer grows
//! while any number of readers binary-search it without taking a lock for
//! longer than an `Arc` clone.
//!
//! Entries live in chunks of `FIRST_CHUNK << k` words-sized slots, so a
//! segment with a handful of entries costs a couple of KiB while a full
//! 10 MiB index needs about a dozen chunks. A published entry is never
//! changed, so readers see either the entry or, past the published length,
//! nothing.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const FIRST_CHUNK_SHIFT: u32 = 8;
const FIRST_CHUNK: usize = 1 << FIRST_CHUNK_SHIFT;

type Chunks = Arc<Vec<Arc<[AtomicU64]>>>;

/// Entries of `W` 64-bit words each.
pub(crate) struct Entries<const W: usize> {
    chunks: Mutex<Chunks>,
    len: AtomicUsize,
}

/// Where entry `i` lives: (chunk, slot in chunk).
fn locate(i: usize) -> (usize, usize) {
    let shifted = i + FIRST_CHUNK;
    let chunk = (usize::BITS - 1 - shifted.leading_zeros() - FIRST_CHUNK_SHIFT) as usize;
    (chunk, shifted - (FIRST_CHUNK << chunk))
}

impl<const W: usize> Entries<W> {
    pub fn new() -> Self {
        Entries {
            chunks: Mutex::new(Arc::new(Vec::new())),
            len: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn chunks(&self) -> Chunks {
        self.chunks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Appends an entry. Only one thread may write (the log's append lock
    /// guarantees it).
    pub fn push(&self, entry: [u64; W]) {
        let index = self.len.load(Ordering::Relaxed);
        let (chunk, slot) = locate(index);
        let mut chunks = self.chunks();
        if chunk == chunks.len() {
            let capacity = (FIRST_CHUNK << chunk) * W;
            let fresh: Arc<[AtomicU64]> = (0..capacity).map(|_| AtomicU64::new(0)).collect();
            let mut grown = Vec::with_capacity(chunks.len() + 1);
            grown.extend(chunks.iter().cloned());
            grown.push(fresh);
            chunks = Arc::new(grown);
            *self.chunks.lock().unwrap_or_else(|e| e.into_inner()) = chunks.clone();
        }
        for (w, word) in entry.iter().enumerate() {
            chunks[chunk][slot * W + w].store(*word, Ordering::Relaxed);
        }
        // Publishes the words above (and the chunk) to readers that load `len`.
        self.len.store(index + 1, Ordering::Release);
    }

    /// A consistent view of the entries published so far.
    pub fn snapshot(&self) -> Snapshot<W> {
        let len = self.len.load(Ordering::Acquire);
        Snapshot {
            len,
            chunks: self.chunks(),
        }
    }
}

pub(crate) struct Snapshot<const W: usize> {
    len: usize,
    chunks: Chunks,
}

impl<const W: usize> Snapshot<W> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, i: usize) -> [u64; W] {
        debug_assert!(i < self.len);
        let (chunk, slot) = locate(i);
        std::array::from_fn(|w| self.chunks[chunk][slot * W + w].load(Ordering::Relaxed))
    }

    pub fn last(&self) -> Option<[u64; W]> {
        self.len.checked_sub(1).map(|i| self.get(i))
    }

    /// The number of leading entries for which `pred` holds (entries must
    /// be partitioned by `pred`), by binary search.
    pub fn partition_point(&self, pred: impl Fn([u64; W]) -> bool) -> usize {
        let (mut low, mut high) = (0, self.len);
        while low < high {
            let mid = low + (high - low) / 2;
            if pred(self.get(mid)) {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_walks_growing_chunks() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(FIRST_CHUNK - 1), (0, FIRST_CHUNK - 1));
        assert_eq!(locate(FIRST_CHUNK), (1, 0));
        assert_eq!(locate(3 * FIRST_CHUNK - 1), (1, 2 * FIRST_CHUNK - 1));
        assert_eq!(locate(3 * FIRST_CHUNK), (2, 0));
    }

    #[test]
    fn push_get_and_search_across_chunks() {
        let entries = Entries::<2>::new();
        for i in 0..5000u64 {
            entries.push([i * 10, i]);
        }
        let snap = entries.snapshot();
        assert_eq!(snap.len(), 5000);
        assert_eq!(snap.get(4321), [43210, 4321]);
        assert_eq!(snap.last(), Some([49990, 4999]));
        assert_eq!(snap.partition_point(|e| e[0] <= 12345), 1235);
    }

    #[test]
    fn readers_see_a_consistent_prefix_while_the_writer_appends() {
        let entries = Arc::new(Entries::<1>::new());
        let reader = {
            let entries = entries.clone();
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < 20_000 {
                    let snap = entries.snapshot();
                    if let Some(last) = snap.last() {
                        assert_eq!(last, [snap.len() as u64]);
                        assert_eq!(snap.get(snap.len() / 2), [(snap.len() / 2) as u64 + 1]);
                    }
                    seen = snap.len();
                }
            })
        };
        for i in 0..20_000u64 {
            entries.push([i + 1]);
        }
        reader.join().unwrap();
    }
}
