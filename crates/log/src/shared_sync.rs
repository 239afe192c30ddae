//! One sync of the whole file system (`syncfs`) for a caller with several
//! logs to sync at once: a produce request for many partitions with
//! acks=all, a transaction's markers.
//!
//! Each log syncs itself with an fdatasync, which commits the file
//! system's journal and flushes the device's cache for that file. One
//! after another, k logs pay that k times: on the development machine's
//! disk 30 files written and synced in turn take 3.7–4.4 ms, one `syncfs`
//! after writing them 0.6 ms (docs/benchmarks.md, "Syncs shared across
//! logs"). Concurrent fdatasyncs of different files already share a
//! journal commit, so only the caller that would sync its logs one by one
//! asks for a whole sync; concurrent callers asking at once share one
//! (as concurrent `syncfs` calls do not: 16 threads reach 37,000
//! fdatasyncs a second but 16,000 syncfs).
//!
//! The price: a `syncfs` also writes out whatever else is dirty on the file
//! system, such as data produced with acks=1.
//!
//! A failed whole sync says a write was lost somewhere on the file system,
//! not where, and each error is reported to `syncfs` once: a later one
//! that succeeds says nothing of pages the failed one dropped. So after a
//! failure no whole sync vouches for anything again; every log syncs its
//! own files, whose fdatasync fails exactly where a write of theirs was
//! lost (Linux reports a write-back error to each open descriptor of the
//! file, whatever wrote it back, and since 5.8 to `syncfs` separately).

use std::io;
use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Default)]
struct State {
    /// Whole syncs started so far; numbered from 1.
    started: u64,
    /// Whole syncs finished so far. One runs while `finished < started`.
    finished: u64,
    /// A whole sync failed: none vouches for anything any more.
    failed: bool,
    /// Callers waiting for a whole sync, for tests to know they queued.
    #[cfg(test)]
    waiting: usize,
}

/// Whole syncs of one file system, one at a time, each shared by every
/// caller that asked while the one before ran.
#[derive(Default)]
pub(crate) struct SharedSync {
    state: Mutex<State>,
    whole_sync_finished: Condvar,
}

impl SharedSync {
    /// Returns once a whole sync started after the call has finished,
    /// leading it when none is running: true if everything written before
    /// the call is durable, false if a whole sync has ever failed.
    pub fn sync_whole(&self, sync_whole: impl Fn() -> io::Result<()>) -> bool {
        let mut state = self.lock();
        let covering = state.started + 1;
        while state.finished < covering && !state.failed {
            if state.finished == state.started {
                state.started += 1;
                drop(state);
                let result = sync_whole();
                state = self.lock();
                state.finished = state.started;
                if let Err(error) = result {
                    tracing::error!(%error, "sync of the whole file system failed; each log syncs its own files from now on");
                    state.failed = true;
                }
                self.whole_sync_finished.notify_all();
            } else {
                #[cfg(test)]
                {
                    state.waiting += 1;
                }
                state = self.whole_sync_finished.wait(state).unwrap_or_else(|e| e.into_inner());
                #[cfg(test)]
                {
                    state.waiting -= 1;
                }
            }
        }
        !state.failed
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc::{self, Receiver, Sender};
    use std::thread;
    use std::time::Duration;

    /// Whole syncs that report when they start and finish only when told.
    struct Harness {
        shared: Arc<SharedSync>,
        started_tx: Sender<()>,
        started: Receiver<()>,
        release_rx: Arc<Mutex<Receiver<io::Result<()>>>>,
        release: Sender<io::Result<()>>,
    }

    impl Harness {
        fn new() -> Harness {
            let (started_tx, started) = mpsc::channel();
            let (release, release_rx) = mpsc::channel();
            Harness {
                shared: Arc::default(),
                started_tx,
                started,
                release_rx: Arc::new(Mutex::new(release_rx)),
                release,
            }
        }

        /// A caller on its own thread; returns what `sync_whole` said.
        fn caller(&self) -> thread::JoinHandle<bool> {
            let (shared, started, release) = (self.shared.clone(), self.started_tx.clone(), self.release_rx.clone());
            thread::spawn(move || {
                shared.sync_whole(|| {
                    started.send(()).unwrap();
                    release.lock().unwrap().recv().unwrap()
                })
            })
        }

        fn expect_a_whole_sync_to_start(&self) {
            self.started.recv_timeout(Duration::from_secs(10)).unwrap();
        }

        /// Waits until `count` callers wait for a whole sync.
        fn wait_for_waiting(&self, count: usize) {
            for _ in 0..10_000 {
                if self.shared.lock().waiting == count {
                    return;
                }
                thread::sleep(Duration::from_millis(1));
            }
            panic!("the callers never queued");
        }
    }

    #[test]
    fn callers_during_a_whole_sync_share_the_next_one() {
        let harness = Harness::new();
        let first = harness.caller();
        harness.expect_a_whole_sync_to_start();
        // Callers arriving while it runs wait for the next one: the running
        // one may have started before their writes.
        let second = harness.caller();
        let third = harness.caller();
        harness.wait_for_waiting(2);
        harness.release.send(Ok(())).unwrap();
        assert!(first.join().unwrap());
        harness.expect_a_whole_sync_to_start();
        harness.wait_for_waiting(1);
        harness.release.send(Ok(())).unwrap();
        assert!(second.join().unwrap());
        assert!(third.join().unwrap());
        assert_eq!(harness.shared.lock().finished, 2, "the second and third shared one");
        assert!(harness.started.try_recv().is_err(), "nothing else synced");
    }

    #[test]
    fn after_a_failed_whole_sync_none_vouches_for_anything() {
        let harness = Harness::new();
        let first = harness.caller();
        harness.expect_a_whole_sync_to_start();
        let second = harness.caller();
        harness.wait_for_waiting(1);
        harness
            .release
            .send(Err(io::Error::other("write-back failed")))
            .unwrap();
        assert!(!first.join().unwrap(), "the failed sync covered nothing");
        assert!(
            !second.join().unwrap(),
            "the failed sync may have dropped the second's pages"
        );
        assert!(!harness.caller().join().unwrap());
        assert!(harness.started.try_recv().is_err(), "no whole sync after the failure");
    }
}
