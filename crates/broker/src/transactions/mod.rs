//! The transaction coordinator: transactional ids, their producer id and
//! epoch (fencing zombies), the partitions of the ongoing transaction, and
//! two-phase completion: the decision (PrepareCommit/PrepareAbort) is made
//! durable in `__transaction_state`, then a marker goes to every partition,
//! then the transaction is complete. After a crash, prepared transactions are
//! completed on start; ongoing ones are aborted when they time out. Ids
//! left idle past `transactional.id.expiration.ms` are removed
//! (`expiration.rs`).
//!
//! Thread safety: called from blocking threads only. Each transactional id
//! has its own lock, held across that id's log writes so its log and memory
//! agree; different ids proceed in parallel and share fsyncs (group commit).
//! The listener told of each ended transaction runs under that lock too.
//! The map of ids is locked only to find an entry (and, by the expiration,
//! to drop one while holding that id's lock). A separate lock keeps
//! what the produce path checks (KIP-890): which partitions each producer's
//! ongoing transaction has added.

mod expiration;
pub mod txn_log;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gregor_log::Log;

use crate::api::now_ms;
use crate::config::{BrokerConfig, ConfigError};
use crate::errors::*;
use crate::internal_topics;
use crate::partitions::{PartitionManager, TopicError};
use crate::producer_ids::ProducerIdManager;
use txn_log::{TRANSACTION_TOPIC, TxnRecord, TxnState};

/// The (topic, partition) pairs of one transaction.
type PartitionSet = BTreeSet<(String, i32)>;

/// The coordinator epoch stamped in markers: one coordinator on a single node.
const COORDINATOR_EPOCH: i32 = 0;

/// One transactional id's state (None until its first InitProducerId; Dead
/// once the expiration has removed it from the map).
type Entry = Arc<Mutex<Option<TxnRecord>>>;

/// Told of each transaction once its markers are durable: its producer id
/// and whether it committed. The broker settles the transaction's offset
/// commits here. It runs before the id's lock is released, so the offsets
/// are settled before the producer's next transaction can commit any (a
/// late settlement of an abort would drop those too: both are keyed by
/// the producer id).
pub type EndedListener = Box<dyn Fn(i64, bool) + Send + Sync>;

pub struct TransactionCoordinator {
    transactions: Mutex<HashMap<String, Entry>>,
    /// producer id -> (epoch, partitions added to its ongoing transaction).
    ongoing: Mutex<HashMap<i64, (i16, PartitionSet)>>,
    /// `transaction.state.log.num.partitions`
    pub log_partitions: i32,
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
    /// How often `check_transactions` runs: every
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`, or
    /// more often if the expiration's interval is shorter.
    pub cleanup_interval: Duration,
    /// `transactional.id.expiration.ms`
    pub transactional_id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`
    pub remove_expired_interval_ms: i64,
    /// When `check_transactions` next runs the expiration (epoch ms).
    next_expiration_ms: AtomicI64,
    on_ended: EndedListener,
}

/// What EndTxn and the timeout both do: finish a transaction one way.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Commit,
    Abort,
}

impl Outcome {
    /// The state that makes this decision durable.
    fn prepared(self) -> TxnState {
        match self {
            Outcome::Commit => TxnState::PrepareCommit,
            Outcome::Abort => TxnState::PrepareAbort,
        }
    }

    /// The state once every marker is written.
    fn completed(self) -> TxnState {
        match self {
            Outcome::Commit => TxnState::CompleteCommit,
            Outcome::Abort => TxnState::CompleteAbort,
        }
    }
}

impl TransactionCoordinator {
    pub fn new(config: &BrokerConfig, on_ended: EndedListener) -> Result<TransactionCoordinator, ConfigError> {
        // Kafka's INT settings with atLeast(1): anything else stops the broker.
        let positive = |key: &str| config.parse_at_least::<i32>(key, 1).map(i64::from);
        let abort_interval_ms = positive("transaction.abort.timed.out.transaction.cleanup.interval.ms")?;
        let transactional_id_expiration_ms = positive("transactional.id.expiration.ms")?;
        let remove_expired_interval_ms = positive("transaction.remove.expired.transaction.cleanup.interval.ms")?;
        Ok(TransactionCoordinator {
            transactions: Mutex::new(HashMap::new()),
            ongoing: Mutex::new(HashMap::new()),
            // At most as many as a topic may have (CreateTopics' limit).
            log_partitions: positive("transaction.state.log.num.partitions")?.min(10_000) as i32,
            max_timeout_ms: positive("transaction.max.timeout.ms")? as i32,
            cleanup_interval: Duration::from_millis(abort_interval_ms.min(remove_expired_interval_ms) as u64),
            transactional_id_expiration_ms,
            remove_expired_interval_ms,
            // As Kafka schedules it: the first run one interval after start.
            next_expiration_ms: AtomicI64::new(now_ms() + remove_expired_interval_ms),
            on_ended,
        })
    }

    /// KIP-890: whether `producer_id` at `epoch` has added `topic`-`partition` to its ongoing transaction.
    pub fn verify(&self, producer_id: i64, epoch: i16, topic: &str, partition: i32) -> bool {
        let ongoing = self.ongoing.lock().unwrap_or_else(|e| e.into_inner());
        ongoing
            .get(&producer_id)
            .is_some_and(|(e, partitions)| *e == epoch && partitions.contains(&(topic.to_string(), partition)))
    }

    fn track(&self, record: &TxnRecord) {
        let mut ongoing = self.ongoing.lock().unwrap_or_else(|e| e.into_inner());
        ongoing.retain(|_, (_, partitions)| !partitions.is_empty());
        match record.state {
            TxnState::Ongoing => ongoing.insert(record.producer_id, (record.producer_epoch, record.partitions.clone())),
            _ => ongoing.remove(&record.producer_id),
        };
    }

    /// The lock of `id`'s state, created empty on first use.
    fn entry(&self, id: &str) -> Entry {
        let mut transactions = self.transactions.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(transactions.entry(id.to_string()).or_default())
    }

    /// Runs `f` on `id`'s state under that id's lock. The expiration may
    /// remove an id while a request waits for its lock: it marks the entry
    /// Dead before dropping it from the map, and the request then looks
    /// the id up again (finding a fresh entry), so nothing is ever written
    /// to an entry the map no longer holds.
    fn with_id<R>(&self, id: &str, f: impl FnOnce(&mut Option<TxnRecord>) -> R) -> R {
        loop {
            let entry = self.entry(id);
            let mut current = lock(&entry);
            if current.as_ref().is_some_and(|record| record.state == TxnState::Dead) {
                continue;
            }
            return f(&mut current);
        }
    }

    /// Every id's lock, for the periodic checks and the admin listings.
    fn entries(&self) -> Vec<(String, Entry)> {
        let transactions = self.transactions.lock().unwrap_or_else(|e| e.into_inner());
        transactions.iter().map(|(id, e)| (id.clone(), Arc::clone(e))).collect()
    }

    /// Replays `__transaction_state` (the last record of each id wins) and
    /// completes the transactions that were prepared before a crash.
    pub fn load(&self, partitions: &PartitionManager) -> Result<(), TopicError> {
        let Some(topic) = partitions.topic(TRANSACTION_TOPIC) else {
            return Ok(());
        };
        let mut loaded = HashMap::new();
        for partition in &topic.partitions {
            for record in internal_topics::read_all(&partition.log)? {
                let Some(key) = &record.key else { continue };
                match txn_log::decode(key, record.value.as_deref()) {
                    Some((id, Some(state))) => loaded.insert(id, state),
                    Some((id, None)) => loaded.remove(&id),
                    None => None,
                };
            }
        }
        tracing::info!(
            transactions = loaded.len(),
            "loaded transactions from {TRANSACTION_TOPIC}"
        );
        for (id, record) in loaded {
            self.track(&record);
            *lock(&self.entry(&id)) = Some(record);
        }
        self.end_unknown_transactions(partitions);
        self.complete_prepared(partitions);
        Ok(())
    }

    /// Settles the transactions the partitions hold open but this
    /// coordinator does not list there. A transaction's later
    /// AddPartitionsToTxn are not synced (see `add_partitions`), so a
    /// machine crash can lose one while the
    /// data it let in was synced. Such a transaction was never decided,
    /// since a decision syncs the log after it: if its producer's
    /// transaction is still ongoing at the same epoch, the partition joins
    /// it; otherwise the partition's part is aborted, which the producer
    /// learns from its next request.
    fn end_unknown_transactions(&self, partitions: &PartitionManager) {
        let mut by_producer = HashMap::new();
        for (id, entry) in self.entries() {
            if let Some(record) = lock(&entry).as_ref() {
                by_producer.insert(record.producer_id, (id.clone(), Arc::clone(&entry)));
            }
        }
        for topic in partitions.topics().values() {
            for partition in &topic.partitions {
                let key = (partition.topic.clone(), partition.index);
                for producer in partition.log.producer_states() {
                    if producer.current_txn_start_offset < 0 {
                        continue;
                    }
                    if let Some((id, entry)) = by_producer.get(&producer.producer_id)
                        && self.adopt(partitions, id, entry, &key, producer.producer_epoch)
                    {
                        continue;
                    }
                    tracing::warn!(
                        topic = %key.0,
                        partition = key.1,
                        producer_id = producer.producer_id,
                        "aborting a transaction the coordinator lost track of in a crash"
                    );
                    let marker = partitions
                        .append_marker(
                            partition,
                            producer.producer_id,
                            producer.producer_epoch,
                            false,
                            COORDINATOR_EPOCH,
                        )
                        .and_then(|info| partition.log.sync_to(info.last_offset + 1));
                    match marker {
                        Ok(_) => (self.on_ended)(producer.producer_id, false),
                        Err(error) => {
                            tracing::error!(topic = %key.0, partition = key.1, %error, "cannot abort a lost transaction")
                        }
                    }
                }
            }
        }
    }

    /// Whether `id`'s transaction covers the open transaction its producer
    /// (at `epoch`) has in `partition`, adding the partition to it if the
    /// transaction is ongoing at that epoch.
    fn adopt(
        &self,
        partitions: &PartitionManager,
        id: &str,
        entry: &Entry,
        partition: &(String, i32),
        epoch: i16,
    ) -> bool {
        let mut current = lock(entry);
        let Some(record) = current.as_mut() else { return false };
        match record.state {
            TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
                if record.partitions.contains(partition) =>
            {
                true
            }
            TxnState::Ongoing if record.producer_epoch == epoch => {
                let mut updated = record.clone();
                updated.partitions.insert(partition.clone());
                if self.persist(partitions, id, &updated, true).is_err() {
                    return false;
                }
                tracing::info!(transactional_id = id, topic = %partition.0, partition = partition.1, "re-added a partition to an ongoing transaction after a crash");
                *record = updated;
                true
            }
            _ => false,
        }
    }

    /// Completes every prepared transaction: those prepared before a
    /// restart, and those whose markers could not be written when they
    /// were decided.
    fn complete_prepared(&self, partitions: &PartitionManager) {
        for (id, entry) in self.entries() {
            let mut guard = lock(&entry);
            let Some(record) = guard.as_mut() else { continue };
            let outcome = match record.state {
                TxnState::PrepareCommit => Outcome::Commit,
                TxnState::PrepareAbort => Outcome::Abort,
                _ => continue,
            };
            tracing::info!(transactional_id = %id, "completing a prepared transaction");
            if let Err(code) = self.complete(partitions, &id, record, outcome) {
                tracing::error!(transactional_id = %id, code, "cannot complete a prepared transaction");
            }
        }
    }

    /// Appends `record` to `__transaction_state`; with `durable`, waits until it is synced.
    fn persist(&self, partitions: &PartitionManager, id: &str, record: &TxnRecord, durable: bool) -> Result<(), i16> {
        let encoded = [txn_log::encode(id, record)];
        let written = if durable {
            internal_topics::append(partitions, TRANSACTION_TOPIC, self.log_partitions, id, &encoded, None).map(|_| ())
        } else {
            internal_topics::append_unsynced(partitions, TRANSACTION_TOPIC, self.log_partitions, id, &encoded, None)
                .map(|_| ())
        };
        written.map_err(internal_topics::coordinator_error)?;
        self.track(record);
        Ok(())
    }

    /// Writes the prepared decision's markers, tells the listener, and then
    /// writes the completed state.
    ///
    /// The markers are synced before the completed state is appended, so a
    /// durable CompleteCommit/CompleteAbort always follows durable markers.
    /// The completed state itself is not waited for: if a crash loses it,
    /// the transaction is still prepared on restart and its markers are
    /// written again, which ends nothing new (as after a coordinator
    /// failover in Kafka) as long as no later transaction of this producer
    /// has data in those partitions. So the next write of this id, which
    /// must come before any such data, syncs it first.
    fn complete(
        &self,
        partitions: &PartitionManager,
        id: &str,
        record: &mut TxnRecord,
        outcome: Outcome,
    ) -> Result<(), i16> {
        let mut written = Vec::with_capacity(record.partitions.len());
        for (topic, index) in &record.partitions {
            let Some(partition) = partitions.partition(topic, *index) else {
                continue;
            };
            let info = partitions
                .append_marker(
                    &partition,
                    record.producer_id,
                    record.producer_epoch,
                    outcome == Outcome::Commit,
                    COORDINATOR_EPOCH,
                )
                .map_err(|e| e.code())?;
            written.push((partition, info.last_offset + 1));
        }
        let targets: Vec<(&Log, i64)> = (written.iter())
            .map(|(partition, end_offset)| (&partition.log, *end_offset))
            .collect();
        for synced in gregor_log::sync_logs(&targets) {
            synced.map_err(|e| e.code())?;
        }
        (self.on_ended)(record.producer_id, outcome == Outcome::Commit);
        record.state = outcome.completed();
        record.partitions.clear();
        record.last_update_ms = now_ms();
        self.persist(partitions, id, record, false)
    }

    /// Makes the decision durable (PrepareCommit/PrepareAbort): from here
    /// on the transaction ends that way, whatever crashes.
    fn prepare(
        &self,
        partitions: &PartitionManager,
        id: &str,
        record: &mut TxnRecord,
        outcome: Outcome,
    ) -> Result<(), i16> {
        record.state = outcome.prepared();
        record.last_update_ms = now_ms();
        self.persist(partitions, id, record, true)
    }

    /// Prepares and completes the ongoing transaction of `record`.
    fn end(
        &self,
        partitions: &PartitionManager,
        id: &str,
        record: &mut TxnRecord,
        outcome: Outcome,
    ) -> Result<(), i16> {
        self.prepare(partitions, id, record, outcome)?;
        self.complete(partitions, id, record, outcome)
    }

    /// InitProducerId with a transactional id: a new producer id at epoch 0,
    /// or the same id at the next epoch, which fences the previous producer
    /// (its ongoing transaction is aborted first). Returns the producer id
    /// and epoch.
    pub fn init_producer_id(
        &self,
        partitions: &PartitionManager,
        producer_ids: &ProducerIdManager,
        id: &str,
        timeout_ms: i32,
    ) -> Result<(i64, i16), i16> {
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(INVALID_TRANSACTION_TIMEOUT);
        }
        internal_topics::ensure(partitions, TRANSACTION_TOPIC, self.log_partitions)
            .map_err(|_| COORDINATOR_NOT_AVAILABLE)?;
        self.with_id(id, |current| {
            let now = now_ms();
            let mut record = match current.as_ref() {
                None => {
                    let producer_id = producer_ids.next_id(partitions).map_err(|e| e.code())?;
                    TxnRecord {
                        producer_id,
                        producer_epoch: -1,
                        timeout_ms,
                        state: TxnState::Empty,
                        partitions: BTreeSet::new(),
                        last_update_ms: now,
                        start_ms: -1,
                    }
                }
                Some(existing) => existing.clone(),
            };
            if matches!(record.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                return Err(CONCURRENT_TRANSACTIONS);
            }
            // The epoch moves before any abort, so the abort markers (written
            // with the old producer id) fence the old producer's writes.
            let exhausted = record.producer_epoch >= i16::MAX - 1;
            record.producer_epoch = record.producer_epoch.saturating_add(1);
            if record.state == TxnState::Ongoing {
                tracing::info!(
                    transactional_id = id,
                    "aborting the ongoing transaction of a fenced producer"
                );
                self.end(partitions, id, &mut record, Outcome::Abort)?;
            }
            // Past the last epoch, the transactional id moves to a new producer id.
            if exhausted {
                record.producer_id = producer_ids.next_id(partitions).map_err(|e| e.code())?;
                record.producer_epoch = 0;
            }
            record.timeout_ms = timeout_ms;
            record.state = TxnState::Empty;
            record.partitions.clear();
            record.last_update_ms = now;
            self.persist(partitions, id, &record, true)?;
            let answer = (record.producer_id, record.producer_epoch);
            *current = Some(record);
            Ok(answer)
        })
    }

    /// Checks a request's producer id and epoch against the transactional
    /// id's, and returns its state.
    fn check_producer(record: Option<&mut TxnRecord>, producer_id: i64, epoch: i16) -> Result<&mut TxnRecord, i16> {
        let record = record.ok_or(INVALID_PRODUCER_ID_MAPPING)?;
        if record.producer_id != producer_id {
            return Err(INVALID_PRODUCER_ID_MAPPING);
        }
        if epoch < record.producer_epoch {
            return Err(PRODUCER_FENCED);
        }
        if epoch > record.producer_epoch {
            return Err(INVALID_PRODUCER_EPOCH);
        }
        Ok(record)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition).
    pub fn add_partitions(
        &self,
        partitions: &PartitionManager,
        id: &str,
        producer_id: i64,
        epoch: i16,
        added: &[(String, i32)],
    ) -> Result<(), i16> {
        self.with_id(id, |current| {
            let record = Self::check_producer(current.as_mut(), producer_id, epoch)?;
            if matches!(record.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                return Err(CONCURRENT_TRANSACTIONS);
            }
            if record.state == TxnState::Ongoing && added.iter().all(|p| record.partitions.contains(p)) {
                return Ok(());
            }
            let mut updated = record.clone();
            if updated.state != TxnState::Ongoing {
                updated.state = TxnState::Ongoing;
                updated.start_ms = now_ms();
            }
            updated.partitions.extend(added.iter().cloned());
            updated.last_update_ms = now_ms();
            // The first addition of a transaction is synced, and with it the
            // previous transaction's unsynced completion (see `complete`):
            // once this transaction's data is let in, no restart may replay
            // that completion's markers, which would end this transaction
            // too (same producer id and epoch). Later additions are not
            // waited for: a decision (EndTxn, or an abort on timeout or
            // fencing) syncs them, and a machine crash before any decision
            // is repaired on start (`end_unknown_transactions`).
            let starts_transaction = record.state != TxnState::Ongoing;
            self.persist(partitions, id, &updated, starts_transaction)?;
            *record = updated;
            Ok(())
        })
    }

    /// EndTxn: commit or abort the ongoing transaction. As Kafka does, the
    /// answer is given (through `decided`) once the decision is durable,
    /// before the markers are written; this id's lock is held until they
    /// are, so its next request waits for the transaction to complete.
    /// A retry of a completed end answers as the first did.
    pub fn end_transaction(
        &self,
        partitions: &PartitionManager,
        id: &str,
        producer_id: i64,
        epoch: i16,
        outcome: Outcome,
        decided: impl FnOnce(Result<(), i16>),
    ) {
        self.with_id(id, |current| {
            let record = match Self::check_producer(current.as_mut(), producer_id, epoch) {
                Ok(record) => record,
                Err(code) => {
                    decided(Err(code));
                    return;
                }
            };
            match (record.state, outcome) {
                (TxnState::Ongoing, _) => {}
                (TxnState::CompleteCommit, Outcome::Commit) | (TxnState::CompleteAbort, Outcome::Abort) => {
                    decided(Ok(()));
                    return;
                }
                (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                    decided(Err(CONCURRENT_TRANSACTIONS));
                    return;
                }
                _ => {
                    decided(Err(INVALID_TXN_STATE));
                    return;
                }
            }
            if let Err(code) = self.prepare(partitions, id, record, outcome) {
                decided(Err(code));
                return;
            }
            decided(Ok(()));
            if let Err(code) = self.complete(partitions, id, record, outcome) {
                // Still prepared: the periodic check writes the markers again.
                tracing::error!(
                    transactional_id = id,
                    code,
                    "cannot write the markers of a decided transaction"
                );
            }
        })
    }

    /// The periodic check: completes prepared transactions whose markers
    /// failed, and aborts ongoing transactions older than their timeout,
    /// bumping the epoch so the timed-out producer is fenced (as Kafka
    /// does); once every `transaction.remove.expired.transaction.cleanup.interval.ms`
    /// it also removes expired transactional ids.
    pub fn check_transactions(&self, partitions: &PartitionManager) {
        self.complete_prepared(partitions);
        let now = now_ms();
        for (id, entry) in self.entries() {
            let mut current = lock(&entry);
            let Some(record) = current.as_mut() else { continue };
            if record.state != TxnState::Ongoing || now - record.start_ms <= record.timeout_ms as i64 {
                continue;
            }
            tracing::info!(transactional_id = %id, "aborting a transaction past its timeout");
            let mut updated = record.clone();
            updated.producer_epoch += 1;
            match self.end(partitions, &id, &mut updated, Outcome::Abort) {
                Ok(()) => *record = updated,
                Err(code) => tracing::error!(transactional_id = %id, code, "cannot abort a timed-out transaction"),
            }
        }
        self.expire_if_due(partitions, now);
    }

    /// The transactional ids and their state, for DescribeTransactions and ListTransactions.
    pub fn snapshot(&self) -> Vec<(String, TxnRecord)> {
        let mut all: Vec<_> = self
            .entries()
            .into_iter()
            .filter_map(|(id, entry)| lock(&entry).clone().map(|record| (id, record)))
            .filter(|(_, record)| record.state != TxnState::Dead)
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// Locks one id's state; a panic elsewhere never poisons the coordinator.
fn lock(entry: &Entry) -> MutexGuard<'_, Option<TxnRecord>> {
    entry.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::{self, InternalRecord};

    /// A broker's partitions on a fresh directory, with topic `t` of two partitions.
    pub(super) fn partitions(dir: &std::path::Path) -> (BrokerConfig, PartitionManager) {
        let settings = [("log.dirs".to_string(), dir.display().to_string())];
        let config = BrokerConfig::load(None, &settings).unwrap();
        let partitions = PartitionManager::open(config.clone()).unwrap();
        partitions.create_topic("t", 2, Default::default(), false).unwrap();
        (config, partitions)
    }

    /// A coordinator that tells no one of ended transactions.
    pub(super) fn unheard(config: &BrokerConfig) -> TransactionCoordinator {
        TransactionCoordinator::new(config, Box::new(|_, _| {})).unwrap()
    }

    /// Writes one transactional record of `producer` to `t`-`index`, as a
    /// produce the coordinator let in would.
    pub(super) fn write_transactional(partitions: &PartitionManager, index: i32, producer: (i64, i16)) {
        let record = InternalRecord {
            key: b"k".to_vec(),
            value: Some(b"v".to_vec()),
        };
        let partition = partitions.partition("t", index).unwrap();
        let batch = record_batch::encode(&[record], now_ms(), Some(producer));
        let info = partitions.append_internal(&partition, &batch, now_ms()).unwrap();
        partition.log.sync_to(info.last_offset + 1).unwrap();
    }

    /// A coordinator on a fresh directory, and the producer id and epoch it gave transactional id `tx`.
    fn coordinator_of_tx(
        dir: &std::path::Path,
    ) -> (BrokerConfig, PartitionManager, TransactionCoordinator, (i64, i16)) {
        let (config, partitions) = partitions(dir);
        let coordinator = unheard(&config);
        let producer = coordinator
            .init_producer_id(&partitions, &ProducerIdManager::default(), "tx", 60_000)
            .unwrap();
        (config, partitions, coordinator, producer)
    }

    /// The state of `id` as a coordinator that replayed the log sees it,
    /// and the transactions that coordinator ended on loading.
    fn reloaded(config: &BrokerConfig, partitions: &PartitionManager, id: &str) -> (Vec<(i64, bool)>, TxnRecord) {
        let ended = Arc::new(Mutex::new(Vec::new()));
        let heard = Arc::clone(&ended);
        let coordinator = TransactionCoordinator::new(
            config,
            Box::new(move |producer, committed| lock_ended(&heard).push((producer, committed))),
        )
        .unwrap();
        coordinator.load(partitions).unwrap();
        let record = coordinator.snapshot().into_iter().find(|(i, _)| i == id).unwrap().1;
        let ended = lock_ended(&ended).clone();
        (ended, record)
    }

    fn lock_ended(ended: &Mutex<Vec<(i64, bool)>>) -> MutexGuard<'_, Vec<(i64, bool)>> {
        ended.lock().unwrap()
    }

    #[test]
    fn a_transaction_whose_partitions_were_lost_in_a_crash_is_aborted_on_start() {
        let dir = tempfile::tempdir().unwrap();
        let (config, partitions, _, (producer_id, epoch)) = coordinator_of_tx(dir.path());
        // The data is durable; the AddPartitionsToTxn that let it in is not in the log.
        write_transactional(&partitions, 0, (producer_id, epoch));
        let log = &partitions.partition("t", 0).unwrap().log;
        assert_eq!(log.last_stable_offset(), 0, "the open transaction holds the partition");

        let (ended, record) = reloaded(&config, &partitions, "tx");
        assert_eq!(ended, [(producer_id, false)]);
        assert_eq!(record.state, TxnState::Empty);
        assert_eq!(log.log_end_offset(), 2, "an abort marker follows the record");
        assert_eq!(log.last_stable_offset(), 2, "nothing is left open");
    }

    /// A machine crash loses what was not synced. Were the next
    /// transaction let in while the last one's CompleteCommit was unsynced,
    /// a restart would find the last one still prepared and write its
    /// COMMIT markers again, into partitions now holding the next one's
    /// data: committing data its producer may still abort.
    #[test]
    fn a_transaction_starts_only_once_the_last_ones_completion_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (_, partitions, coordinator, (producer_id, epoch)) = coordinator_of_tx(dir.path());
        let transaction_log = || {
            let topic = partitions.topic(TRANSACTION_TOPIC).unwrap();
            let index = internal_topics::partition_for("tx", coordinator.log_partitions);
            Arc::clone(&topic.partitions[index as usize])
        };
        let t0 = [("t".to_string(), 0)];
        for transaction in 0..2 {
            coordinator
                .add_partitions(&partitions, "tx", producer_id, epoch, &t0)
                .unwrap();
            let log = &transaction_log().log;
            assert_eq!(
                log.durable_offset(),
                log.log_end_offset(),
                "transaction {transaction} started with its coordinator's log unsynced"
            );
            write_transactional(&partitions, 0, (producer_id, epoch));
            coordinator.end_transaction(&partitions, "tx", producer_id, epoch, Outcome::Commit, |r| {
                assert_eq!(r, Ok(()))
            });
        }
    }

    /// The group coordinator keys a transaction's offset commits by
    /// producer id alone. Were an abort's offsets settled after the id's
    /// lock is released, the producer's next transaction could already
    /// have committed offsets, and the late abort would drop them too.
    #[test]
    fn the_listener_hears_of_an_end_before_the_id_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let (config, partitions) = partitions(dir.path());
        let coordinator_cell = Arc::new(std::sync::OnceLock::<Arc<TransactionCoordinator>>::new());
        let heard = Arc::new(Mutex::new(Vec::new()));
        let listener = {
            let (coordinator_cell, heard) = (Arc::clone(&coordinator_cell), Arc::clone(&heard));
            Box::new(move |producer, committed| {
                let coordinator = coordinator_cell.get().unwrap();
                let id_locked = coordinator.entry("tx").try_lock().is_err();
                assert!(id_locked, "the listener ran after the id's lock was released");
                lock_ended(&heard).push((producer, committed));
            })
        };
        let coordinator = Arc::new(TransactionCoordinator::new(&config, listener).unwrap());
        assert!(coordinator_cell.set(Arc::clone(&coordinator)).is_ok());
        let (producer_id, epoch) = coordinator
            .init_producer_id(&partitions, &ProducerIdManager::default(), "tx", 60_000)
            .unwrap();
        for outcome in [Outcome::Abort, Outcome::Commit] {
            coordinator
                .add_partitions(&partitions, "tx", producer_id, epoch, &[("t".into(), 0)])
                .unwrap();
            coordinator.end_transaction(&partitions, "tx", producer_id, epoch, outcome, |r| {
                assert_eq!(r, Ok(()))
            });
        }
        assert_eq!(*lock_ended(&heard), [(producer_id, false), (producer_id, true)]);
    }

    #[test]
    fn a_partition_lost_from_an_ongoing_transaction_rejoins_it_on_start() {
        let dir = tempfile::tempdir().unwrap();
        let (config, partitions, coordinator, (producer_id, epoch)) = coordinator_of_tx(dir.path());
        coordinator
            .add_partitions(&partitions, "tx", producer_id, epoch, &[("t".into(), 1)])
            .unwrap();
        // A later, unsynced addition of t-0 was lost; its data was not.
        write_transactional(&partitions, 0, (producer_id, epoch));
        write_transactional(&partitions, 1, (producer_id, epoch));

        let (ended, record) = reloaded(&config, &partitions, "tx");
        assert!(ended.is_empty(), "{ended:?}");
        assert_eq!(record.state, TxnState::Ongoing);
        let both: PartitionSet = [("t".to_string(), 0), ("t".to_string(), 1)].into();
        assert_eq!(record.partitions, both);
        // Still open: the producer's commit or the timeout decides both partitions.
        assert_eq!(partitions.partition("t", 0).unwrap().log.last_stable_offset(), 0);
    }
}
