//! Transactional id expiration (Kafka's `transactional.id.expiration.ms`):
//! an id whose last transaction is finished (Empty, CompleteCommit,
//! CompleteAbort) and whose state has not changed for longer than the
//! expiration is forgotten. A tombstone for its key goes to
//! `__transaction_state`, so a replay forgets it too, and the id's next
//! InitProducerId starts afresh with a new producer id, as in Kafka.
//!
//! An id is never expired while its transaction is ongoing or prepared.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::txn_log::{self, TRANSACTION_TOPIC, TxnRecord, TxnState};
use super::{Entry, TransactionCoordinator, lock};
use crate::internal_topics;
use crate::partitions::PartitionManager;

impl TransactionCoordinator {
    /// Runs [`Self::expire_transactional_ids`] if a
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` has
    /// passed since the last run (the periodic check may tick more often).
    pub(super) fn expire_if_due(&self, partitions: &PartitionManager, now: i64) {
        let due = self.next_expiration_ms.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        // One caller at a time runs the pass; the periodic check is its only caller anyway.
        let next = now + self.remove_expired_interval_ms;
        if self
            .next_expiration_ms
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.expire_transactional_ids(partitions, now);
        }
    }

    /// Whether `record` may be removed at `now` (Kafka's `shouldExpire`).
    fn expired(&self, record: &TxnRecord, now: i64) -> bool {
        matches!(
            record.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        ) && record.last_update_ms <= now - self.transactional_id_expiration_ms
    }

    /// Removes every transactional id expired at `now`; returns them.
    ///
    /// Each id is checked under its own lock, so a request that changed it
    /// since the scan keeps it.
    ///
    /// The tombstone is not waited for: if a machine crash loses it, the
    /// replay brings back a finished, idle id, which the next pass removes
    /// again; and the id's next InitProducerId writes durably to the same
    /// partition after it, which syncs the tombstone first.
    pub(crate) fn expire_transactional_ids(&self, partitions: &PartitionManager, now: i64) -> Vec<String> {
        let mut expired = Vec::new();
        for (id, entry) in self.entries() {
            let mut current = lock(&entry);
            if self.expire(partitions, &id, &entry, &mut current, now) {
                expired.push(id);
            }
        }
        expired
    }

    /// Removes `id` if it is expired at `now`; `current` is its state,
    /// locked by the caller. The tombstone is written under that lock;
    /// then the entry is marked Dead and dropped from the map, still under
    /// the id's lock, so a request already waiting for the lock looks the
    /// id up again (see `with_id`) instead of writing to the dropped entry.
    fn expire(
        &self,
        partitions: &PartitionManager,
        id: &str,
        entry: &Entry,
        current: &mut Option<TxnRecord>,
        now: i64,
    ) -> bool {
        let Some(record) = current.as_mut() else { return false };
        if !self.expired(record, now) {
            return false;
        }
        let tombstone = [txn_log::tombstone(id)];
        let written =
            internal_topics::append_unsynced(partitions, TRANSACTION_TOPIC, self.log_partitions, id, &tombstone, None);
        if let Err(code) = written {
            // Kept: the next pass tries again.
            tracing::warn!(
                transactional_id = id,
                code,
                "cannot write the tombstone of an expired transactional id"
            );
            return false;
        }
        tracing::info!(
            transactional_id = id,
            producer_id = record.producer_id,
            last_update_ms = record.last_update_ms,
            "removed a transactional id past transactional.id.expiration.ms"
        );
        record.state = TxnState::Dead;
        let mut transactions = self.transactions.lock().unwrap_or_else(|e| e.into_inner());
        if transactions.get(id).is_some_and(|known| Arc::ptr_eq(known, entry)) {
            transactions.remove(id);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::Outcome;
    use super::super::tests::{partitions, unheard, write_transactional};
    use super::*;
    use crate::api::now_ms;
    use crate::config::BrokerConfig;
    use crate::producer_ids::ProducerIdManager;
    use std::time::{Duration, Instant};

    const EXPIRATION_MS: i64 = 604_800_000;

    /// The ids a coordinator that replayed the log knows.
    fn reloaded_ids(config: &BrokerConfig, partitions: &PartitionManager) -> Vec<String> {
        let coordinator = unheard(config);
        coordinator.load(partitions).unwrap();
        coordinator.snapshot().into_iter().map(|(id, _)| id).collect()
    }

    fn ids(coordinator: &TransactionCoordinator) -> Vec<String> {
        coordinator.snapshot().into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn kafkas_defaults_and_invalid_values_stop_the_broker() {
        let coordinator = unheard(&BrokerConfig::load(None, &[]).unwrap());
        assert_eq!(coordinator.transactional_id_expiration_ms, EXPIRATION_MS);
        assert_eq!(coordinator.remove_expired_interval_ms, 3_600_000);
        assert_eq!(
            coordinator.cleanup_interval.as_millis(),
            10_000,
            "the abort check's interval"
        );
        for key in [
            "transactional.id.expiration.ms",
            "transaction.remove.expired.transaction.cleanup.interval.ms",
        ] {
            for value in ["0", "2147483648", "soon"] {
                let settings = [(key.to_string(), value.to_string())];
                let config = BrokerConfig::load(None, &settings).unwrap();
                let error = TransactionCoordinator::new(&config, Box::new(|_, _| {}))
                    .err()
                    .expect("rejected");
                assert!(error.to_string().contains(key), "{error}");
            }
        }
        let settings = [(
            "transaction.remove.expired.transaction.cleanup.interval.ms".to_string(),
            "50".to_string(),
        )];
        let coordinator = unheard(&BrokerConfig::load(None, &settings).unwrap());
        assert_eq!(
            coordinator.cleanup_interval.as_millis(),
            50,
            "the check ticks for the shorter interval"
        );
    }

    #[test]
    fn an_idle_id_is_removed_durably_and_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let (config, partitions) = partitions(dir.path());
        let coordinator = unheard(&config);
        let producer_ids = ProducerIdManager::default();
        let (first_producer, _) = coordinator
            .init_producer_id(&partitions, &producer_ids, "idle", 60_000)
            .unwrap();
        let (producer_id, epoch) = coordinator
            .init_producer_id(&partitions, &producer_ids, "committed", 60_000)
            .unwrap();
        coordinator
            .add_partitions(&partitions, "committed", producer_id, epoch, &[("t".into(), 0)])
            .unwrap();
        write_transactional(&partitions, 0, (producer_id, epoch));
        coordinator.end_transaction(&partitions, "committed", producer_id, epoch, Outcome::Commit, |r| {
            r.unwrap()
        });
        let now = now_ms();

        assert!(
            coordinator.expire_transactional_ids(&partitions, now).is_empty(),
            "used just now"
        );
        let later = now + EXPIRATION_MS + 1;
        let mut expired = coordinator.expire_transactional_ids(&partitions, later);
        expired.sort();
        assert_eq!(expired, ["committed", "idle"]);
        assert!(ids(&coordinator).is_empty());
        assert!(
            reloaded_ids(&config, &partitions).is_empty(),
            "the tombstones are replayed"
        );

        // The next InitProducerId knows nothing of the old producer.
        let (producer_id, epoch) = coordinator
            .init_producer_id(&partitions, &producer_ids, "idle", 60_000)
            .unwrap();
        assert_ne!(producer_id, first_producer, "a new producer id");
        assert_eq!(epoch, 0);
        assert_eq!(
            reloaded_ids(&config, &partitions),
            ["idle"],
            "the id's new state follows its tombstone"
        );
    }

    #[test]
    fn ongoing_transactions_and_recently_used_ids_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (config, partitions) = partitions(dir.path());
        let coordinator = unheard(&config);
        let producer_ids = ProducerIdManager::default();
        let (producer_id, epoch) = coordinator
            .init_producer_id(&partitions, &producer_ids, "ongoing", 60_000)
            .unwrap();
        coordinator
            .add_partitions(&partitions, "ongoing", producer_id, epoch, &[("t".into(), 0)])
            .unwrap();
        coordinator
            .init_producer_id(&partitions, &producer_ids, "recent", 60_000)
            .unwrap();
        let updated = coordinator
            .snapshot()
            .iter()
            .map(|(_, r)| r.last_update_ms)
            .max()
            .unwrap();

        assert!(
            coordinator
                .expire_transactional_ids(&partitions, updated + EXPIRATION_MS - 1)
                .is_empty(),
            "both were updated within the expiration"
        );
        assert_eq!(ids(&coordinator), ["ongoing", "recent"]);
        // Long past the expiration, the ongoing transaction is still kept:
        // it is the transaction timeout's to abort, not the expiration's.
        assert_eq!(
            coordinator.expire_transactional_ids(&partitions, updated + 10 * EXPIRATION_MS),
            ["recent"]
        );
        assert_eq!(ids(&coordinator), ["ongoing"]);
        let coordinator = unheard(&config);
        coordinator.load(&partitions).unwrap();
        let (id, record) = &coordinator.snapshot()[0];
        assert_eq!((id.as_str(), record.state), ("ongoing", TxnState::Ongoing));
    }

    /// An InitProducerId that found the id's entry just before the
    /// expiration dropped it waits for the id's lock, then finds the id
    /// afresh instead of writing to the dropped entry: memory and the log
    /// agree, and the id starts over with a new producer id.
    #[test]
    fn an_init_producer_id_waiting_on_an_expiring_id_finds_it_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let (config, partitions) = partitions(dir.path());
        let coordinator = unheard(&config);
        let producer_ids = ProducerIdManager::default();
        let (old_producer, _) = coordinator
            .init_producer_id(&partitions, &producer_ids, "race", 60_000)
            .unwrap();
        let entry = coordinator.entry("race");
        let mut current = lock(&entry);
        let answer = std::thread::scope(|scope| {
            let init = scope.spawn(|| coordinator.init_producer_id(&partitions, &producer_ids, "race", 60_000));
            // The request holds the entry (besides the map and this test) and waits for its lock.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Arc::strong_count(&entry) < 3 {
                assert!(Instant::now() < deadline, "the request never reached the lock");
                std::thread::yield_now();
            }
            let later = now_ms() + EXPIRATION_MS;
            assert!(coordinator.expire(&partitions, "race", &entry, &mut current, later));
            drop(current);
            init.join().unwrap().unwrap()
        });
        assert_ne!(answer.0, old_producer, "the id started afresh");
        let in_memory = coordinator.snapshot();
        assert_eq!(in_memory.len(), 1);
        assert_eq!((in_memory[0].1.producer_id, in_memory[0].1.producer_epoch), answer);
        let replayed = unheard(&config);
        replayed.load(&partitions).unwrap();
        assert_eq!(replayed.snapshot(), in_memory, "memory and the log agree");
    }
}
