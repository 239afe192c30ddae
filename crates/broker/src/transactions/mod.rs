//! The transaction coordinator: transactional ids, their producer id and
//! epoch (fencing zombies), the partitions of the ongoing transaction, and
//! two-phase completion: the decision (PrepareCommit/PrepareAbort) is made
//! durable in `__transaction_state`, then a marker goes to every partition,
//! then the transaction is complete. After a crash, prepared transactions are
//! completed on start; ongoing ones are aborted when they time out.
//!
//! Thread safety: called from blocking threads only. One mutex over all
//! transactional ids is held across each operation's log writes, so the log
//! and memory agree; a second keeps what the produce path checks (KIP-890):
//! which partitions each producer's ongoing transaction has added.

pub mod txn_log;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

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

pub struct TransactionCoordinator {
    transactions: Mutex<HashMap<String, TxnRecord>>,
    /// producer id -> (epoch, partitions added to its ongoing transaction).
    ongoing: Mutex<HashMap<i64, (i16, PartitionSet)>>,
    /// `transaction.state.log.num.partitions`
    pub log_partitions: i32,
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub cleanup_interval: Duration,
}

/// What EndTxn and the timeout both do: finish a transaction one way.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Commit,
    Abort,
}

impl TransactionCoordinator {
    pub fn new(config: &BrokerConfig) -> Result<TransactionCoordinator, ConfigError> {
        let number = |key: &str, default: i64| -> Result<i64, ConfigError> {
            match config.properties.get(key) {
                Some(_) => config.parse::<i64>(key),
                None => Ok(default),
            }
        };
        Ok(TransactionCoordinator {
            transactions: Mutex::new(HashMap::new()),
            ongoing: Mutex::new(HashMap::new()),
            log_partitions: number("transaction.state.log.num.partitions", 50)?.clamp(1, 10_000) as i32,
            max_timeout_ms: number("transaction.max.timeout.ms", 900_000)?.clamp(1, i32::MAX as i64) as i32,
            cleanup_interval: Duration::from_millis(
                number("transaction.abort.timed.out.transaction.cleanup.interval.ms", 10_000)?.max(1) as u64,
            ),
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

    /// Replays `__transaction_state` (the last record of each id wins) and
    /// completes the transactions that were prepared before a crash; returns
    /// their producer ids and whether each committed.
    pub fn load(&self, partitions: &PartitionManager) -> Result<Vec<(i64, bool)>, TopicError> {
        let mut completed = Vec::new();
        let Some(topic) = partitions.topic(TRANSACTION_TOPIC) else {
            return Ok(completed);
        };
        let mut transactions = self.transactions.lock().unwrap_or_else(|e| e.into_inner());
        for partition in &topic.partitions {
            for record in internal_topics::read_all(&partition.log)? {
                let Some(key) = &record.key else { continue };
                match txn_log::decode(key, record.value.as_deref()) {
                    Some((id, Some(state))) => transactions.insert(id, state),
                    Some((id, None)) => transactions.remove(&id),
                    None => None,
                };
            }
        }
        let prepared: Vec<String> = transactions
            .iter()
            .filter(|(_, t)| matches!(t.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .map(|(id, _)| id.clone())
            .collect();
        for id in prepared {
            let outcome = if transactions[&id].state == TxnState::PrepareCommit {
                Outcome::Commit
            } else {
                Outcome::Abort
            };
            tracing::info!(transactional_id = %id, "completing a transaction prepared before the restart");
            let record = transactions.get_mut(&id).expect("present");
            match self.complete(partitions, &id, record, outcome) {
                Ok(()) => completed.push((record.producer_id, outcome == Outcome::Commit)),
                Err(code) => tracing::error!(transactional_id = %id, code, "cannot complete a prepared transaction"),
            }
        }
        for record in transactions.values() {
            self.track(record);
        }
        tracing::info!(
            transactions = transactions.len(),
            "loaded transactions from {TRANSACTION_TOPIC}"
        );
        Ok(completed)
    }

    fn persist(&self, partitions: &PartitionManager, id: &str, record: &TxnRecord) -> Result<(), i16> {
        let encoded = txn_log::encode(id, record);
        internal_topics::append(partitions, TRANSACTION_TOPIC, self.log_partitions, id, &[encoded], None)
            .map(|_| ())?;
        self.track(record);
        Ok(())
    }

    /// Writes the prepared decision's markers and then the completed state.
    fn complete(
        &self,
        partitions: &PartitionManager,
        id: &str,
        record: &mut TxnRecord,
        outcome: Outcome,
    ) -> Result<(), i16> {
        for (topic, index) in &record.partitions {
            let Some(partition) = partitions.partition(topic, *index) else {
                continue;
            };
            partitions
                .append_marker(
                    &partition,
                    record.producer_id,
                    record.producer_epoch,
                    outcome == Outcome::Commit,
                    COORDINATOR_EPOCH,
                )
                .map_err(|e| e.code())?;
        }
        record.state = if outcome == Outcome::Commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        record.partitions.clear();
        record.last_update_ms = now_ms();
        self.persist(partitions, id, record)
    }

    /// Prepares and completes the ongoing transaction of `record`.
    fn end(
        &self,
        partitions: &PartitionManager,
        id: &str,
        record: &mut TxnRecord,
        outcome: Outcome,
    ) -> Result<(), i16> {
        record.state = if outcome == Outcome::Commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        record.last_update_ms = now_ms();
        self.persist(partitions, id, record)?;
        self.complete(partitions, id, record, outcome)
    }

    /// InitProducerId with a transactional id: a new producer id at epoch 0,
    /// or the same id at the next epoch, which fences the previous producer
    /// (its ongoing transaction is aborted first).
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
        let mut transactions = self.transactions.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        let mut record = match transactions.get(id) {
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
        // The epoch moves before any abort, so the abort markers fence the old producer's writes.
        if record.producer_epoch >= i16::MAX - 1 {
            record.producer_id = producer_ids.next_id(partitions).map_err(|e| e.code())?;
            record.producer_epoch = -1;
        }
        record.producer_epoch += 1;
        if record.state == TxnState::Ongoing {
            tracing::info!(
                transactional_id = id,
                "aborting the ongoing transaction of a fenced producer"
            );
            self.end(partitions, id, &mut record, Outcome::Abort)?;
        }
        record.timeout_ms = timeout_ms;
        record.state = TxnState::Empty;
        record.partitions.clear();
        record.last_update_ms = now;
        self.persist(partitions, id, &record)?;
        let answer = (record.producer_id, record.producer_epoch);
        transactions.insert(id.to_string(), record);
        Ok(answer)
    }

    /// Checks a request's producer id and epoch against the transactional id's.
    fn check_producer(record: Option<&TxnRecord>, producer_id: i64, epoch: i16) -> Result<(), i16> {
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
        Ok(())
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
        let mut transactions = self.transactions.lock().unwrap_or_else(|e| e.into_inner());
        Self::check_producer(transactions.get(id), producer_id, epoch)?;
        let record = transactions.get_mut(id).expect("checked");
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
        self.persist(partitions, id, &updated)?;
        *record = updated;
        Ok(())
    }

    /// EndTxn: commit or abort the ongoing transaction. A retry of a
    /// completed end answers as the first did.
    pub fn end_transaction(
        &self,
        partitions: &PartitionManager,
        id: &str,
        producer_id: i64,
        epoch: i16,
        outcome: Outcome,
    ) -> Result<(), i16> {
        let mut transactions = self.transactions.lock().unwrap_or_else(|e| e.into_inner());
        Self::check_producer(transactions.get(id), producer_id, epoch)?;
        let record = transactions.get_mut(id).expect("checked");
        match (record.state, outcome) {
            (TxnState::Ongoing, _) => self.end(partitions, id, record, outcome),
            (TxnState::CompleteCommit, Outcome::Commit) | (TxnState::CompleteAbort, Outcome::Abort) => Ok(()),
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => Err(CONCURRENT_TRANSACTIONS),
            _ => Err(INVALID_TXN_STATE),
        }
    }

    /// Aborts ongoing transactions older than their timeout, bumping the
    /// epoch so the timed-out producer is fenced (as Kafka does); returns
    /// the producer ids whose transactions were aborted.
    pub fn abort_timed_out(&self, partitions: &PartitionManager) -> Vec<i64> {
        let mut aborted = Vec::new();
        let mut transactions = self.transactions.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        for (id, record) in transactions.iter_mut() {
            if record.state != TxnState::Ongoing || now - record.start_ms <= record.timeout_ms as i64 {
                continue;
            }
            tracing::info!(transactional_id = %id, "aborting a transaction past its timeout");
            let mut updated = record.clone();
            updated.producer_epoch += 1;
            match self.end(partitions, id, &mut updated, Outcome::Abort) {
                Ok(()) => {
                    aborted.push(record.producer_id);
                    *record = updated;
                }
                Err(code) => tracing::error!(transactional_id = %id, code, "cannot abort a timed-out transaction"),
            }
        }
        aborted
    }

    /// The transactional ids and their state, for DescribeTransactions and ListTransactions.
    pub fn snapshot(&self) -> Vec<(String, TxnRecord)> {
        let transactions = self.transactions.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = transactions.iter().map(|(id, r)| (id.clone(), r.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
